"""Methods that grow a network per task (docs/spec.md §9): the shared base, and PN.

PN, Learn to Grow (:mod:`par.learners.ltg`) and MNTDP-S/D (:mod:`par.learners.mntdp`)
each chain like finetune (predecessor t − 1, evaluated on every task ≤ t): the
state after task t holds every module of tasks 1…t (PN: all columns; LtG and
MNTDP: the module library and each task's path), so one predecessor is all a
job reads, and M of the final state is everything inference on all tasks
needs.  Earlier tasks' modules are frozen (``requires_grad`` off, their
BatchNorms in eval mode), so their outputs are unchanged bit for bit.

The per-task search of LtG and MNTDP is the strategy's ``search`` step, run
inside the learn-task job before training and timed (record
``search_seconds``, part of the job's ``seconds`` and so of T).

Torch is imported inside the hooks: the workflow imports this module while it
is parsed (tests/test_startup.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from par.learners.methods import Finetune, register_method
from par.learners.strategies import Strategy, register_strategy

if TYPE_CHECKING:
    from torch import nn

    from par.nets.model import MultiHeadModel


class Growing(Strategy):
    """Base: prepare the predecessor's model (or an empty body from ``body_spec``),
    grow it for the task (:meth:`grow`), train only :attr:`trainable` with every
    other module frozen and in eval mode."""

    def __init__(self):
        self.trainable: list[nn.Module] = []

    def prepare(self, predecessor, body_spec, task, n_classes, device):
        from par.nets.model import MultiHeadModel

        if predecessor is None:
            if body_spec is None:
                raise ValueError(f"strategy {self.name} starts a new model here and needs a body spec")
            model = MultiHeadModel(body_spec)
        else:
            model = predecessor
        model = model.to(device)
        self.grow(model, task, n_classes, device)
        self.set_trainable(model, [*self.trainable, model.head(task)])
        return model

    def grow(self, model: MultiHeadModel, task: int, n_classes: int, device) -> None:
        raise NotImplementedError

    @staticmethod
    def add_head(model: MultiHeadModel, task: int, n_classes: int, device) -> None:
        from torch import nn

        if str(task) in model.heads:
            raise ValueError(f"task {task} already has a head")
        model.heads[str(task)] = nn.Linear(model.body.out_features, n_classes).to(device)

    def set_trainable(self, model: MultiHeadModel, modules: list) -> None:
        """Freeze everything but ``modules`` (which then train)."""
        model.requires_grad_(False)
        for m in modules:
            m.requires_grad_(True)
        self.trainable = list(modules)

    def parameters(self, model, task):
        return [p for m in self.trainable for p in m.parameters()]

    def set_mode(self, model, task):
        model.eval()
        for m in self.trainable:
            m.train()


# ---- Progressive Networks -------------------------------------------------------------------

@register_method("pn")
class ProgressiveNetworks(Finetune):
    """Progressive Networks (Rusu et al. 2016): a new column per task (strategy ``pn``)."""

    body_kind = "pn"


@register_strategy("pn")
class Progressive(Growing):
    """A new column (light ResNet18) and its laterals from every earlier column
    (:class:`par.nets.growing_bodies.ProgressiveBody`); only they and the new head train."""

    def grow(self, model, task, n_classes, device):
        model.body.add_column(task, n_classes)
        self.add_head(model, task, n_classes, device)
        self.trainable = model.body.column_modules(task)

    def architecture(self, model, task):
        return model.body.architecture(task)
