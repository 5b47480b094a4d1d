"""Distillation strategies: PAR's ``regularize`` (LwF inside a task group, paper
Sec. 3.2, Eq. 7–9) and the LwF baseline (Li & Hoiem 2017), one base
(:class:`Distillation`): the loss is cross-entropy of the new head plus a
weighted distillation term from a frozen copy of the model at the start of
the task; the two differ in their weight and temperature options and in which
parameters train.

Torch is imported inside the hooks (the workflow imports this module while it
is parsed).
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Iterable

from par.learners.options import ConfigSection, Option
from par.learners.strategies import Strategy, register_strategy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from par.nets.model import MultiHeadModel


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


class Distillation(Strategy):
    """Continue the model with loss = CE(new head) + w · Σ_old softCE(student, teacher)
    at temperature T (:func:`distillation_loss`), the teacher a frozen copy (eval mode,
    no gradient) of the model at the start of the task, made only when the model
    has earlier heads (``old_tasks``).  Subclasses pass w and T from their own
    config section's options to :meth:`__init__`."""

    teacher: MultiHeadModel | None = None

    def __init__(self, weight: float, temperature: float):
        self.distillation_weight = weight
        self.distillation_temperature = temperature
        self.old_tasks: list[int] = []

    def start(self, model: MultiHeadModel, task: int) -> None:
        self.old_tasks = [t for t in model.tasks if t != task]
        self.teacher = copy.deepcopy(model).eval().requires_grad_(False) if self.old_tasks else None

    def loss(self, model: MultiHeadModel, task: int, x: torch.Tensor, y: torch.Tensor):
        return distillation_loss(model, self.teacher, task, self.old_tasks, x, y,
                                 temperature=self.distillation_temperature, weight=self.distillation_weight)


@register_strategy("regularize")
class Regularize(Distillation):
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
        super().__init__(lwf_lambda, lwf_temperature)

    def start(self, model: MultiHeadModel, task: int) -> None:
        super().start(model, task)
        for u in self.old_tasks:
            model.head(u).requires_grad_(False)

    def parameters(self, model: MultiHeadModel, task: int) -> Iterable[nn.Parameter]:
        return [*model.body.parameters(), *model.head(task).parameters()]


@register_strategy("lwf")
class LwF(Distillation):
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
        super().__init__(c, temperature)
