"""How one task is learned: a small class of hooks per strategy, chosen by name.

Every strategy runs the same loop (:func:`par.training.fit`); a strategy only
says where the model comes from (fresh body or the predecessor's state), which
parameters train, the modules' modes, and the loss.  LwF is "plain
cross-entropy plus a distillation term", not a copy of the loop.

This module holds the base class and PAR's own strategies with the plain
baselines; the others live by topic: distillation (PAR's ``regularize``, the LwF
baseline: :mod:`par.learners.distillation`), importance penalties (EWC, MAS,
MAS-α: :mod:`par.learners.penalties`), memory (:mod:`par.learners.memory`), HAT
(:mod:`par.learners.hat`), growing networks (:mod:`par.learners.growing`,
:mod:`par.learners.ltg`, :mod:`par.learners.mntdp`).

The workflow reads the strategies' traits (``fresh_body``, ``early_stopping``)
while it is parsed, which must not import torch (the workflow must start
fast): torch is imported inside the hooks, which only run in learn-task jobs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Iterable

from par.infra.registry import Registry
from par.learners.options import ConfigSection

if TYPE_CHECKING:
    import torch
    from torch import nn

    from par.learners.context import SearchResult
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
    3. ``bind(context)``: the task's data (:class:`par.learners.context.TaskContext`);
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
    :mod:`par.learners.discovery`.
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
        the task's data (:class:`par.learners.context.TaskContext`): the stream, the
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

    def search(self, model: MultiHeadModel, task: int, train, val, config) -> SearchResult | None:
        """A per-task architecture search run before training, timed by the job and
        counted in T (Learn to Grow, MNTDP; docs/spec.md §9).  Returns None (nothing
        searched) or a :class:`par.learners.context.SearchResult`: its JSON-able
        ``record`` goes to the learn record's ``search`` field; its ``fit``, when not
        None, is the :class:`par.training.FitResult` of a network the search already
        trained (then the job does not train again)."""
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
