"""Importance-penalty baselines (docs/spec.md §7): EWC, MAS and MAS with α-scaling
continue one shared model with loss = CE(new head) + a quadratic penalty that
keeps important parameters near their earlier values.  The importance
estimates and the penalty are in :mod:`par.learners.regularizers`.

Torch is imported inside the hooks (the workflow imports this module while it
is parsed).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from par.learners.options import ConfigSection, Option
from par.learners.strategies import Strategy, register_strategy

if TYPE_CHECKING:
    import torch

    from par.nets.model import MultiHeadModel


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
    "MAS with alpha-scaling, method mas-alpha (docs/spec.md §7; the α-scaled MAS page of the docs): each "
    "earlier task keeps its importance and anchor, scaled by alpha_t so that "
    "sum_i alpha_t Omega_ti is equal across tasks and sum_t alpha_t = lambda."), {
    "lambda": Option(300.0, "number", "sum of the alpha_t (MAS's c 300, so one earlier task is weighted "
                     "exactly as in mas)", minimum=0),
    "importance": Option("authors", None, "estimate of each task's Omega_t, as in section mas",
                         enum=("authors", "aljundi")),
})


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
    """MAS with α-scaling (docs/spec.md §7): loss = CE(new head) +
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
