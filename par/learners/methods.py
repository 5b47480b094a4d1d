"""Lifelong-learning methods as chains of per-task model states (docs: the design page).

A method says, for every task t, which strategy learns it, which earlier state
it starts from (its *predecessor*), and which tasks its new state is evaluated
on.  The workflow builds its DAG from exactly this:

| method      | predecessor of t                  | evaluated after t        |
|-------------|-----------------------------------|--------------------------|
| par         | previous task of t's group        | tasks of t's group so far|
| finetune    | t − 1                             | all tasks ≤ t            |
| independent | none                              | t                        |
| ewc, lwf, mas, mas-alpha | t − 1 (like finetune)    | all tasks ≤ t            |
| er, agem, hat | t − 1 (like finetune)               | all tasks ≤ t            |

An *assignment* is the JSON-able dict a learn-task job receives as params:
``task, group, strategy, predecessor, group_tasks, genotype_source``.
"""
from __future__ import annotations

from typing import ClassVar

from par.infra.registry import Registry
from par.planning import TaskDecision

METHODS = Registry("method")
register_method = METHODS.register


def get_method(name: str) -> "Method":
    """The method registered as ``name``; KeyError lists the choices."""
    return METHODS.create(name)


class Method:
    """Base class; ``needs_plan`` methods take their assignments from ``plan.json``.

    ``body_kind``: the body a fresh model of the method builds (``par.nets``).
    A method registers under its name with ``@register_method("name")``; a
    subclass of :class:`Finetune` chains like finetune and learns every task
    with the strategy registered under the same name.  The workflow finds the
    module that registers it through :mod:`par.learners.discovery`.
    """

    name: ClassVar[str] = "base"
    needs_plan: ClassVar[bool] = False
    body_kind: ClassVar[str] = "light_resnet18"

    def assignments(self, n_tasks: int, plan: list[TaskDecision] | None = None) -> list[dict]:
        raise NotImplementedError


@register_method("par")
class PAR(Method):
    """Parameter Allocation & Regularization: assignments come from the plan (docs/spec.md §3)."""

    needs_plan = True
    body_kind = "expert"

    def assignments(self, n_tasks: int, plan: list[TaskDecision] | None = None) -> list[dict]:
        if plan is None or len(plan) != n_tasks:
            raise ValueError(f"PAR needs a plan with {n_tasks} task decisions")
        return [d.job_params() for d in plan]


@register_method("finetune")
class Finetune(Method):
    """One model trained task after task without constraint (docs/spec.md §7).

    Subclasses chain the same way and learn every task with the strategy of
    their own name (the regularization baselines)."""

    def assignments(self, n_tasks: int, plan=None) -> list[dict]:
        return [{"task": t, "group": 1, "strategy": self.name, "predecessor": t - 1 if t > 1 else None,
                 "group_tasks": list(range(1, t + 1)), "genotype_source": None} for t in range(1, n_tasks + 1)]


@register_method("independent")
class Independent(Method):
    """A fresh model per task (docs/spec.md §7)."""

    def assignments(self, n_tasks: int, plan=None) -> list[dict]:
        return [{"task": t, "group": t, "strategy": "independent", "predecessor": None,
                 "group_tasks": [t], "genotype_source": None} for t in range(1, n_tasks + 1)]


@register_method("ewc")
class EWC(Finetune):
    """One model, EWC penalty with the running-mean Fisher (docs/spec.md §7; strategy ``ewc``)."""


@register_method("lwf")
class LwF(Finetune):
    """One model, LwF distillation on every old head (docs/spec.md §7; strategy ``lwf``)."""


@register_method("mas")
class MAS(Finetune):
    """One model, MAS penalty with the running-mean importance (docs/spec.md §7; strategy ``mas``)."""


@register_method("mas-alpha")
class MASAlpha(Finetune):
    """One model, MAS with per-task α-scaled importances (docs/spec.md §7; strategy ``mas-alpha``)."""


@register_method("er")
class ER(Finetune):
    """One model with an episodic memory replayed on every step (docs/spec.md §9; strategy ``er``)."""


@register_method("agem")
class AGEM(Finetune):
    """One model, gradients projected against a memory batch's (docs/spec.md §9; strategy ``agem``)."""


@register_method("hat")
class HAT(Finetune):
    """One gated light ResNet18, units of earlier tasks protected by their mask (docs/spec.md §9; strategy ``hat``)."""

    body_kind = "hat_light_resnet18"
