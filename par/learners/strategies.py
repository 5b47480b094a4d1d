"""How one task is learned: a small class of hooks per strategy, chosen by name.

Every strategy runs the same loop (:func:`par.training.fit`); a strategy only
says where the model comes from (fresh body or the predecessor's state), which
parameters train, the modules' modes, and the loss.  LwF is "plain
cross-entropy plus a distillation term", not a copy of the loop.

The workflow reads the strategies' traits (``fresh_body``, ``early_stopping``)
while it is parsed, which must not import torch (issue 8): torch is imported
inside the hooks, which only run in learn-task jobs.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, ClassVar, Iterable

from par.infra.registry import Registry
from par.learners.options import ConfigSection, Option

if TYPE_CHECKING:
    import torch
    from torch import nn

    from par.nets.model import MultiHeadModel

STRATEGIES = Registry("strategy")
register_strategy = STRATEGIES.register


def get_strategy(name: str, **options) -> "Strategy":
    """An instance of the strategy registered as ``name``; KeyError names the choices."""
    return STRATEGIES.create(name, **options)


class Strategy:
    """Plain cross-entropy on the new head, every parameter trains, model in train mode.

    ``fresh_body``: the task starts a new body (allocation, independent) rather
    than continuing from its predecessor's state.  ``early_stopping``: the
    loop may stop after ``patience`` epochs without improvement.

    Hooks, in the order one learn job calls them (:func:`par.learners.job.learn_task`
    and the loop :func:`par.training.fit`):

    1. ``__init__(**options)``: the keys of the config section (``config``),
       renamed by ``config_keys``; a task without predecessor gets only
       ``keys_without_predecessor``, the others keep their defaults;
    2. ``prepare`` → ``start(model, task)``: the model is the predecessor's
       state (its ``model.carry`` holds what the previous task's ``after_task``
       returned) or a fresh body, with the new head already added;
    3. ``bind(context)``: the task's data (:class:`par.learners.job.TaskContext`);
    4. ``search(...)``: growing methods only; may train the network itself;
    5. ``fit``: ``parameters`` once (the optimizer's); then per epoch
       ``set_mode``, ``before_epoch``; per batch ``loss`` → backward →
       ``before_step`` → gradient-norm clip → optimizer step → ``after_step``;
       after the epoch's validation ``after_epoch(record)`` (``record["val_accuracy"]``).
       **At the end, fit restores the weights of the best-validation epoch**
       (the first of the highest ``val_accuracy``; ``model.load_state_dict``):
       the model's parameters and buffers go back, the strategy's own attributes
       do not.  A strategy that accumulates per-step state (e.g. Synaptic
       Intelligence's path integral) must keep the state of that epoch itself,
       e.g. snapshot it in ``after_epoch`` whenever ``val_accuracy`` beats the best
       so far (strictly greater: ties keep the earlier epoch);
    6. ``after_task(model, task, train)``: after the restore; returns the tensors
       the next task needs (saved with the state as ``model.carry``);
    7. ``record_fields``, ``architecture``: JSON-able additions to the record.

    A new strategy is a subclass registered by name (``@register_strategy("name")``);
    its method, the chain rule, is a :class:`par.learners.methods.Method`
    registered with ``@register_method("name")``; both live in one module with
    the section they read (``config = ConfigSection(...)``,
    :mod:`par.learners.options`).  How the workflow finds that module:
    :mod:`par.learners.catalog`.
    """

    name: ClassVar[str] = "base"
    fresh_body: ClassVar[bool] = False
    early_stopping: ClassVar[bool] = False
    # Options from the config: the section (declared as data, par.learners.options),
    # its key → constructor argument, and the keys still used when the task has no
    # predecessor (the workflow passes only those, so a change of the others does
    # not rerun a chain's first task).
    config: ClassVar[ConfigSection | None] = None
    config_keys: ClassVar[dict[str, str]] = {}
    keys_without_predecessor: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def options_from_config(cls, section: dict) -> dict:
        """Constructor arguments from (a subset of) the strategy's config section."""
        return {cls.config_keys[k]: v for k, v in section.items()}

    def prepare(self, predecessor: MultiHeadModel | None, body_spec: dict | None, task: int,
                n_classes: int, device: torch.device) -> MultiHeadModel:
        """The model to train for ``task``: a fresh body from ``body_spec`` (always
        for ``fresh_body`` strategies, else for the first task of a chain) or the
        predecessor's model, plus a new head of ``n_classes``.

        Raises ValueError when the needed predecessor or body spec is missing.
        """
        from par.nets.model import MultiHeadModel

        if self.fresh_body or predecessor is None:
            if body_spec is None:
                raise ValueError(f"strategy {self.name} starts a new model here and needs a body spec")
            model = MultiHeadModel(body_spec).to(device)
        else:
            model = predecessor.to(device)
        model.add_head(task, n_classes)
        self.start(model, task)
        return model

    def start(self, model: MultiHeadModel, task: int) -> None:
        """Called once before training (e.g. to freeze a teacher)."""

    def parameters(self, model: MultiHeadModel, task: int) -> Iterable[nn.Parameter]:
        return model.parameters()

    def set_mode(self, model: MultiHeadModel, task: int) -> None:
        model.train()

    def loss(self, model: MultiHeadModel, task: int, x: torch.Tensor, y: torch.Tensor):
        import torch.nn.functional as F

        logits = model(x, task)
        return F.cross_entropy(logits, y), logits

    def bind(self, context) -> None:
        """Called once by :func:`par.learners.job.learn_task` before training, with
        the task's data (:class:`par.learners.job.TaskContext`): the stream, the
        images, the training batches and their sample ids.  Memory methods (ER,
        A-GEM) read their earlier tasks' samples from it.  Default: nothing."""

    def record_fields(self, model: MultiHeadModel) -> dict:
        """JSON-able fields the learn-task record adds for this strategy (e.g. the
        number of memory samples).  Default: none."""
        return {}

    # Hook points of the shared loop (par.training.TrainingHooks): no-ops here.
    def before_epoch(self, model: MultiHeadModel, task: int, epoch: int, n_batches: int) -> None:
        """Start of every epoch, after ``set_mode`` (HAT: restart the s annealing)."""

    def before_step(self, model: MultiHeadModel, task: int) -> None:
        """After backward, before the gradient clip and the optimizer step (A-GEM, HAT)."""

    def after_step(self, model: MultiHeadModel, task: int) -> None:
        """After every optimizer step (HAT: clamp the task embeddings)."""

    def after_epoch(self, model: MultiHeadModel, task: int, epoch: int, record: dict) -> None:
        """After the epoch's validation, with its history row."""

    def search(self, model: MultiHeadModel, task: int, train, val, config) -> dict | None:
        """A per-task architecture search run before training, timed by the job and
        counted in T (Learn to Grow, MNTDP; docs/spec.md §10).  Returns None (nothing searched)
        or a JSON-able dict for the record; under the key ``fit`` it may hand back
        the :class:`par.training.FitResult` of a network the search already trained
        (then the job does not train again; the key is removed from the record)."""
        return None

    def architecture(self, model: MultiHeadModel, task: int) -> dict | None:
        """The task's architecture for the record (growing methods: which modules are
        reused, adapted, new); None for methods with a fixed architecture."""
        return None

    def after_task(self, model: MultiHeadModel, task: int, train: Iterable) -> dict[str, torch.Tensor]:
        """Called once after training (Avalanche's ``after_training_exp``); returns
        what the next task of the chain needs besides the weights (importance,
        anchors), saved with the state as ``model.carry``.  Default: nothing."""
        return {}


@register_strategy("allocate-search")
class AllocateSearch(Strategy):
    """New expert from the task's own searched cell (paper Eq. 10)."""

    fresh_body = True
    early_stopping = True


@register_strategy("allocate-reuse")
class AllocateReuse(AllocateSearch):
    """New expert, fresh weights, with the cell of the nearest group's expert."""


@register_strategy("independent")
class Independent(Strategy):
    """Baseline: a fresh light ResNet18 for every task."""

    fresh_body = True


@register_strategy("finetune")
class Finetune(Strategy):
    """Baseline: continue the one shared model, no constraint."""


def lwf_soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                           temperature: float = 2.0, epsilon: float = 1e-5) -> torch.Tensor:
    """LwF's modified cross-entropy (Li & Hoiem 2017), mean over the batch.

    Both distributions are softmax then power 1/T, renormalised (= softmax(z/T));
    the student's is smoothed by ``epsilon``/K and renormalised before the log,
    as in the authors' code.  Logits: (n, K).  Returns a scalar.
    """
    import torch.nn.functional as F

    student = F.softmax(student_logits / temperature, dim=1)
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    student = student + epsilon / student.shape[1]
    student = student / student.sum(1, keepdim=True)
    return -(teacher * student.log()).sum(1).mean()


def distillation_loss(model: MultiHeadModel, teacher: MultiHeadModel | None, task: int, old_tasks: list[int],
                      x: "torch.Tensor", y: "torch.Tensor", *, temperature: float, weight: float):
    """CE of the new head plus ``weight`` · Σ_old softCE(student, teacher) over ``old_tasks``
    (LwF, Li & Hoiem 2017; paper Eq. 7–9), the teacher's features computed without
    gradients.  Shared by PAR's ``regularize`` (λ) and the LwF baseline (c).
    Returns (scalar loss, logits (n, K) of head ``task``)."""
    import torch
    import torch.nn.functional as F

    features = model.body(x)
    logits = model.head(task)(features)
    loss = F.cross_entropy(logits, y)
    if old_tasks:
        with torch.no_grad():
            teacher_features = teacher.body(x)
        distill = sum(lwf_soft_cross_entropy(model.head(u)(features), teacher.head(u)(teacher_features), temperature)
                      for u in old_tasks)
        loss = loss + weight * distill
    return loss, logits


# PAR's regularize distillation (section lwf) and the baselines' sections: the schema's
# $defs, each run's overrides and the constructors' defaults all come from these.
LWF_SECTION = ConfigSection("lwf", (
    "PAR's LwF distillation of regularize tasks (docs/spec.md §5, paper Eq. 8-9), lambda 1. "
    "Not the LwF baseline method, which is configured in lwf_baseline."), {
    "lambda": Option(1.0, "number", "weight of the distillation loss", minimum=0),
    "temperature": Option(2.0, "number", "distillation temperature T", exclusive_minimum=0),
})
LWF_BASELINE_SECTION = ConfigSection("lwf_baseline", (
    "LwF baseline, method lwf (docs/spec.md §7; authors' src/approaches/lwf.py, run_files/*/lwf.sh): "
    "distillation on every old head, all parameters train. Not PAR's regularize "
    "distillation (section lwf, lambda 1)."), {
    "c": Option(2.0, "number", "weight of the distillation loss (authors' c_lwf 2)", minimum=0),
    "temperature": Option(2.0, "number", "distillation temperature T (authors' lwf.py: 2)", exclusive_minimum=0),
})
EWC_SECTION = ConfigSection(
    "ewc", "EWC baseline, method ewc (docs/spec.md §7; authors' src/approaches/ewc.py, run_files/*/ewc.sh).", {
        "lambda": Option(3000.0, "number", "weight of the penalty lambda/2 * sum F (theta - theta*)^2 "
                         "(authors' lamb_ewc 3000)", minimum=0),
    })
MAS_SECTION = ConfigSection(
    "mas", "MAS baseline, method mas (docs/spec.md §7; authors' src/approaches/mas.py, run_files/*/mas.sh).", {
        "lambda": Option(300.0, "number", "weight of the penalty lambda/2 * sum Omega (theta - theta*)^2 "
                         "(authors' c_mas 300)", minimum=0),
        "importance": Option("authors", None, (
            "estimate of Omega. authors: batch size * mean over batches of the squared gradient of "
            "the mean squared logit (authors' mas.py); aljundi: mean absolute gradient of the "
            "squared L2 norm of the logits (MAS paper, Aljundi et al. 2018)"), enum=("authors", "aljundi")),
    })
MAS_ALPHA_SECTION = ConfigSection("mas_alpha", (
    "MAS with alpha-scaling, method mas-alpha (docs/spec.md §7, paper/mas-alpha-scaling.md): each "
    "earlier task keeps its importance and anchor, scaled by alpha_t so that "
    "sum_i alpha_t Omega_ti is equal across tasks and sum_t alpha_t = lambda."), {
    "lambda": Option(300.0, "number", "sum of the alpha_t (MAS's c 300, so one earlier task is weighted "
                     "exactly as in mas)", minimum=0),
    "importance": Option("authors", None, "estimate of each task's Omega_t, as in section mas",
                         enum=("authors", "aljundi")),
})


@register_strategy("regularize")
class Regularize(Strategy):
    """Join a group and learn with LwF (paper Sec. 3.2, Eq. 7–9; docs/spec.md §5).

    A frozen copy of the group's model at the start of the task gives soft
    targets for every earlier head of the group on each training batch:
    loss = CE(new head) + λ · Σ_old softCE(student, teacher), temperature T.
    Only the expert (body) and the new head train; the old heads are frozen
    (authors' ``requires_grad_task``): no gradient, weight decay or momentum.
    λ and T come from the config section ``lwf`` (not the LwF baseline's ``lwf_baseline``).
    """

    config = LWF_SECTION
    config_keys = {"lambda": "lwf_lambda", "temperature": "lwf_temperature"}

    def __init__(self, lwf_lambda: float = LWF_SECTION.default("lambda"),
                 lwf_temperature: float = LWF_SECTION.default("temperature")):
        self.lwf_lambda = lwf_lambda
        self.lwf_temperature = lwf_temperature
        self.teacher: MultiHeadModel | None = None
        self.old_tasks: list[int] = []

    def start(self, model: MultiHeadModel, task: int) -> None:
        self.old_tasks = [t for t in model.tasks if t != task]
        self.teacher = copy.deepcopy(model).eval().requires_grad_(False)
        for u in self.old_tasks:
            model.head(u).requires_grad_(False)

    def parameters(self, model: MultiHeadModel, task: int) -> Iterable[nn.Parameter]:
        return [*model.body.parameters(), *model.head(task).parameters()]

    def loss(self, model: MultiHeadModel, task: int, x: torch.Tensor, y: torch.Tensor):
        return distillation_loss(model, self.teacher, task, self.old_tasks, x, y,
                                 temperature=self.lwf_temperature, weight=self.lwf_lambda)


@register_strategy("regularize-head")
class RegularizeHead(Strategy):
    """Join a group but train only the new head; the expert is frozen with its
    BatchNorm in eval mode (paper Sec. 3.2, last paragraph)."""

    def start(self, model: MultiHeadModel, task: int) -> None:
        model.requires_grad_(False)
        model.head(task).requires_grad_(True)

    def parameters(self, model: MultiHeadModel, task: int) -> Iterable[nn.Parameter]:
        return model.head(task).parameters()

    def set_mode(self, model: MultiHeadModel, task: int) -> None:
        model.eval()
        model.head(task).train()


# ---- regularization baselines (docs/spec.md §7): one shared model, a penalty or distillation term ----

@register_strategy("lwf")
class LwF(Strategy):
    """LwF baseline (Li & Hoiem 2017; authors' ``src/approaches/lwf.py``).

    Continues the one shared model; a frozen copy of it at the start of the task
    (eval mode) gives soft targets for every earlier head on each training batch:
    loss = CE(new head) + c · Σ_old softCE(student, teacher), temperature T
    (:func:`lwf_soft_cross_entropy`).  Unlike PAR's ``regularize``, the old heads
    train too (the authors' baseline updates every parameter).  Carries nothing.
    """

    config = LWF_BASELINE_SECTION
    config_keys = {"c": "c", "temperature": "temperature"}

    def __init__(self, c: float = LWF_BASELINE_SECTION.default("c"),
                 temperature: float = LWF_BASELINE_SECTION.default("temperature")):
        self.c = c
        self.temperature = temperature
        self.teacher: MultiHeadModel | None = None
        self.old_tasks: list[int] = []

    def start(self, model: MultiHeadModel, task: int) -> None:
        self.old_tasks = [t for t in model.tasks if t != task]
        self.teacher = copy.deepcopy(model).eval().requires_grad_(False) if self.old_tasks else None

    def loss(self, model: MultiHeadModel, task: int, x: torch.Tensor, y: torch.Tensor):
        return distillation_loss(model, self.teacher, task, self.old_tasks, x, y,
                                 temperature=self.temperature, weight=self.c)


class ImportancePenalty(Strategy):
    """Continue the shared model with loss = CE(new head) + λ · ½ Σ_i Ω_i (θ_i − θ*_i)²
    (:func:`par.learners.regularizers.quadratic_penalty`): θ* = the predecessor's
    parameters (its body and heads), Ω = the running mean over the chain's tasks
    of the per-task importance estimated after each task (:meth:`estimate`).

    Carries ``importance.<parameter name>`` tensors (one float per parameter of
    the model after the task); the anchor is the predecessor state itself.
    Raises ValueError when a predecessor state carries no importance.
    """

    config_keys = {"lambda": "penalty_lambda"}

    def __init__(self, penalty_lambda: float):
        self.penalty_lambda = penalty_lambda
        self.importance: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def estimate(self, model: MultiHeadModel, task: int, train) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def start(self, model: MultiHeadModel, task: int) -> None:
        device = next(model.parameters()).device
        self.importance = {n[len("importance."):]: v.to(device) for n, v in model.carry.items()
                           if n.startswith("importance.")}
        if not self.importance and len(model.tasks) > 1:
            raise ValueError(f"{self.name}: the predecessor state carries no parameter importance "
                             f"(was it learned by {self.name}?)")
        self.anchor = {n: p.detach().clone() for n, p in model.named_parameters() if n in self.importance}

    def loss(self, model: MultiHeadModel, task: int, x: torch.Tensor, y: torch.Tensor):
        import torch.nn.functional as F

        from par.learners import regularizers

        logits = model(x, task)
        loss = F.cross_entropy(logits, y)
        if self.importance:
            loss = loss + self.penalty_lambda * regularizers.quadratic_penalty(model, self.importance, self.anchor)
        return loss, logits

    def after_task(self, model: MultiHeadModel, task: int, train) -> dict[str, torch.Tensor]:
        from par.learners import regularizers

        new = self.estimate(model, task, train)
        merged = regularizers.running_mean(self.importance, new, len(model.tasks) - 1)
        return {f"importance.{n}": v.detach().cpu() for n, v in merged.items()}


@register_strategy("ewc")
class EWC(ImportancePenalty):
    """EWC baseline (Kirkpatrick et al. 2017; authors' ``src/approaches/ewc.py``):
    Ω = diagonal empirical Fisher on the task's training batches
    (:func:`par.learners.regularizers.empirical_fisher`)."""

    config = EWC_SECTION

    def __init__(self, penalty_lambda: float = EWC_SECTION.default("lambda")):
        super().__init__(penalty_lambda)

    def estimate(self, model, task, train):
        from par.learners import regularizers

        return regularizers.empirical_fisher(model, task, train, train.batch_size)


@register_strategy("mas")
class MAS(ImportancePenalty):
    """MAS baseline (Aljundi et al. 2018; authors' ``src/approaches/mas.py``):
    Ω = sensitivity of the squared logits on the task's training batches
    (:func:`par.learners.regularizers.mas_importance`, ``importance`` estimate)."""

    config = MAS_SECTION
    config_keys = {"lambda": "penalty_lambda", "importance": "importance"}
    keys_without_predecessor = ("importance",)

    def __init__(self, penalty_lambda: float = MAS_SECTION.default("lambda"),
                 importance: str = MAS_SECTION.default("importance")):
        super().__init__(penalty_lambda)
        self.importance_estimate = importance

    def estimate(self, model, task, train):
        from par.learners import regularizers

        return regularizers.mas_importance(model, task, train, train.batch_size, self.importance_estimate)


@register_strategy("mas-alpha")
class MASAlpha(Strategy):
    """MAS with α-scaling (``paper/mas-alpha-scaling.md``): loss = CE(new head) +
    Σ_t α_t · ½ Σ_i Ω_ti (θ_i − θ*_ti)² over the earlier tasks t, each with its
    own MAS importance Ω_t and anchor θ*_t (the model after t), α_t chosen so
    Σ_i α_t Ω_ti is equal across tasks and Σ_t α_t = λ.  With one earlier task
    this is exactly ``mas`` with c = λ.  Carries the constant-size sum
    (:class:`par.learners.regularizers.AlphaScaledQuadratic`): ``weight.*`` and
    ``centre.*`` per parameter and three scalars.
    """

    config = MAS_ALPHA_SECTION
    config_keys = {"lambda": "alpha_sum", "importance": "importance"}
    keys_without_predecessor = ("importance",)

    def __init__(self, alpha_sum: float = MAS_ALPHA_SECTION.default("lambda"),
                 importance: str = MAS_ALPHA_SECTION.default("importance")):
        self.alpha_sum = alpha_sum
        self.importance_estimate = importance
        self.quadratic = None  # par.learners.regularizers.AlphaScaledQuadratic, set by start()

    def start(self, model: MultiHeadModel, task: int) -> None:
        from par.learners import regularizers

        device = next(model.parameters()).device
        self.quadratic = regularizers.AlphaScaledQuadratic.from_carry(model.carry).to(device)
        if self.quadratic.n_tasks == 0 and len(model.tasks) > 1:
            raise ValueError("mas-alpha: the predecessor state carries no importance (was it learned by mas-alpha?)")

    def loss(self, model: MultiHeadModel, task: int, x: torch.Tensor, y: torch.Tensor):
        import torch.nn.functional as F

        logits = model(x, task)
        loss = F.cross_entropy(logits, y)
        if self.quadratic.n_tasks:
            loss = loss + self.quadratic.penalty(model, self.alpha_sum)
        return loss, logits

    def after_task(self, model: MultiHeadModel, task: int, train) -> dict[str, torch.Tensor]:
        from par.learners import regularizers

        importance = regularizers.mas_importance(model, task, train, train.batch_size, self.importance_estimate)
        anchor = {n: p.detach() for n, p in model.named_parameters()}
        self.quadratic.add_task(importance, anchor)
        return self.quadratic.to_carry()
