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

from par.learners.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from par.models import MultiHeadModel

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
    """

    name: ClassVar[str] = "base"
    fresh_body: ClassVar[bool] = False
    early_stopping: ClassVar[bool] = False

    def prepare(self, predecessor: MultiHeadModel | None, body_spec: dict | None, task: int,
                n_classes: int, device: torch.device) -> MultiHeadModel:
        """The model to train for ``task``: a fresh body from ``body_spec`` (always
        for ``fresh_body`` strategies, else for the first task of a chain) or the
        predecessor's model, plus a new head of ``n_classes``.

        Raises ValueError when the needed predecessor or body spec is missing.
        """
        from par.models import MultiHeadModel

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


@register_strategy("regularize")
class Regularize(Strategy):
    """Join a group and learn with LwF (paper Sec. 3.2, Eq. 7–9; SPEC §5).

    A frozen copy of the group's model at the start of the task gives soft
    targets for every earlier head of the group on each training batch:
    loss = CE(new head) + λ · Σ_old softCE(student, teacher), temperature T.
    Only the expert (body) and the new head train; the old heads are frozen
    (authors' ``requires_grad_task``): no gradient, weight decay or momentum.
    """

    def __init__(self, lwf_lambda: float = 1.0, lwf_temperature: float = 2.0):
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
        import torch
        import torch.nn.functional as F

        features = model.body(x)
        logits = model.head(task)(features)
        loss = F.cross_entropy(logits, y)
        if self.old_tasks:
            with torch.no_grad():
                teacher_features = self.teacher.body(x)
            distill = sum(lwf_soft_cross_entropy(model.head(u)(features),
                                                 self.teacher.head(u)(teacher_features),
                                                 self.lwf_temperature)
                          for u in self.old_tasks)
            loss = loss + self.lwf_lambda * distill
        return loss, logits


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
