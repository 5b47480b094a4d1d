"""Parameter-importance regularizers of the baselines: EWC, MAS and MAS with α-scaling (docs/spec.md §7).

Each keeps, per parameter θ_i of the shared model, an importance Ω_i and an
anchor θ*_i, and adds ½ λ Σ_i Ω_i (θ_i − θ*_i)² to the new task's loss.  They
differ in how Ω is estimated after a task and how the per-task estimates are
combined:

- EWC (Kirkpatrick et al. 2017): Ω = diagonal empirical Fisher,
  :func:`empirical_fisher`; MAS (Aljundi et al. 2018): Ω = sensitivity of the
  squared outputs, :func:`mas_importance`.  Both as in the authors' baselines
  (github.com/WenjinW/PAR ``src/approaches/ewc.py``, ``mas.py``): the anchor is
  the model after the previous task and Ω is the running mean of the per-task
  estimates (:func:`running_mean`).
- MAS-α (docs/spec.md §7): every earlier task t keeps its own
  anchor θ*_t and importance Ω_t, weighted by α_t so that Σ_i α_t Ω_ti is the
  same for every task and Σ_t α_t = λ (:func:`alpha_scales`).  The sum over
  tasks is a quadratic in θ, so it is kept in constant memory as one weight,
  one centre and one offset (:class:`AlphaScaledQuadratic`).

Importances are dicts ``parameter name → tensor`` shaped like the parameter.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

Importance = dict[str, torch.Tensor]
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def _gradient_statistic(model: nn.Module, batches: Batches,
                        batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                        per_batch: Callable[[torch.Tensor], torch.Tensor], per_images: bool) -> Importance:
    """Σ_b per_batch(∂ batch_loss_b / ∂θ) per parameter, divided by the number of
    batches, or of images when ``per_images``.  The model is in train mode, as in
    the authors' estimates: BatchNorm uses batch statistics and updates its
    running statistics on this pass.  Raises ValueError when ``batches`` is empty."""
    model.train()
    params = dict(model.named_parameters())
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        batch_loss(x, y).backward()
        with torch.no_grad():
            for n, p in params.items():
                if p.grad is not None:
                    total[n] += per_batch(p.grad)
        count += len(x) if per_images else 1
    model.zero_grad(set_to_none=True)
    if count == 0:
        raise ValueError("no batches to estimate parameter importance from")
    return {n: v / count for n, v in total.items()}


def _squared_batch_gradients(model: nn.Module, batches: Batches, batch_size: int,
                             batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Importance:
    """batch_size · mean over batches of (∂ batch_loss / ∂θ)², the estimate of the
    authors' ``utils.fisher_matrix_diag`` and ``mas.compute_importance``."""
    return _gradient_statistic(model, batches, batch_loss, lambda g: batch_size * g.pow(2), per_images=False)


def empirical_fisher(model: nn.Module, task: int, batches: Batches, batch_size: int) -> Importance:
    """Diagonal empirical Fisher of head ``task`` (EWC, Kirkpatrick et al. 2017), authors' estimate.

    F_i = B / n_b · Σ_b (∂ CE_b / ∂θ_i)², where CE_b is the mean cross-entropy of
    the *true labels* over batch b, n_b the number of batches and B =
    ``batch_size`` (the configured batch size, also for a shorter last batch).
    Per-batch, not per-sample, gradients: authors' ``utils.fisher_matrix_diag``.
    ``model(x, task)`` gives (n, K) logits; batches are (images, labels).
    Returns one tensor per parameter (zeros where the head gets no gradient).
    Raises ValueError when ``batches`` is empty.
    """
    return _squared_batch_gradients(model, batches, batch_size, lambda x, y: F.cross_entropy(model(x, task), y))


def mas_importance(model: nn.Module, task: int, batches: Batches, batch_size: int,
                   estimate: str = "authors") -> Importance:
    """MAS importance of head ``task``'s function (Aljundi et al. 2018, Eq. 2–4).

    ``estimate="authors"`` (the PAR authors' ``mas.compute_importance``):
    Ω_i = B / n_b · Σ_b (∂ mean_{x∈b, k} f_k(x)² / ∂θ_i)², squared gradients of
    the mean squared logit over the batch and classes, as the EWC Fisher.
    ``estimate="aljundi"`` (MAS paper and its code): Ω_i = 1/n · Σ_b |∂ Σ_{x∈b}
    ‖f(x)‖²₂ / ∂θ_i|, the mean absolute gradient of the squared L2 norm of the
    logits; with batches of one image it is exactly (1/n) Σ_x |∂‖f(x)‖²/∂θ_i|.
    Labels are not used.  Raises ValueError for an unknown ``estimate`` or no batches.
    """
    if estimate == "authors":
        return _squared_batch_gradients(model, batches, batch_size, lambda x, y: model(x, task).pow(2).mean())
    if estimate != "aljundi":
        raise ValueError(f"unknown MAS importance estimate {estimate!r}; choose 'authors' or 'aljundi'")
    return _gradient_statistic(model, batches, lambda x, y: model(x, task).pow(2).sum(), torch.abs,
                               per_images=True)


def running_mean(previous: Importance, new: Importance, n_previous: int) -> Importance:
    """(new + previous · n) / (n + 1) per parameter, the authors' merge of the
    per-task Fisher / MAS estimates (``ewc.py``/``mas.py``: ``(F_t + F_old·t)/(t+1)``).

    ``n_previous``: tasks already merged into ``previous``.  A parameter missing
    from ``previous`` (a head added since) counts as 0 there.
    """
    return {n: (v + previous[n] * n_previous) / (n_previous + 1) if n in previous else v / (n_previous + 1)
            for n, v in new.items()}


def quadratic_penalty(model: nn.Module, importance: Importance, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """½ Σ_i Ω_i (θ_i − θ*_i)² over the parameters named in ``importance``
    (authors' ``criterion``: ``sum(fisher * (old − param)²) / 2``), a scalar
    differentiable in ``model``'s parameters.  Parameters not in
    ``importance`` (the new head) are free."""
    params = dict(model.named_parameters())
    penalty = torch.zeros((), device=next(model.parameters()).device)
    for n, omega in importance.items():
        penalty = penalty + (omega * (params[n] - anchor[n]).pow(2)).sum()
    return penalty / 2


def alpha_scales(importance_totals: list[float], alpha_sum: float) -> list[float]:
    """α_t of MAS-α (docs/spec.md §7): α_t · S_t is the same for
    every task and Σ_t α_t = ``alpha_sum`` (λ), where S_t = Σ_i Ω_ti > 0.

    Solution: α_t = λ · (1/S_t) / Σ_u (1/S_u).  Raises ValueError for a total ≤ 0.
    """
    if any(s <= 0 for s in importance_totals):
        raise ValueError(f"every task's importance total must be positive, got {importance_totals}")
    harmonic = sum(1.0 / s for s in importance_totals)
    return [alpha_sum / (s * harmonic) for s in importance_totals]


class AlphaScaledQuadratic:
    """Σ_t α_t · ½ Σ_i Ω_ti (θ_i − θ*_ti)² of MAS-α in constant memory.

    With w_t = Ω_t / S_t (each task's importance normalised to total 1), α_t Ω_t =
    (λ / H) w_t where H = Σ_t 1/S_t, and Σ_t w_t (θ − θ*_t)² = W (θ − c)² + r with
    W = Σ_t w_t, c = Σ_t w_t θ*_t / W and r = Σ_t w_t (θ*_t − c)² (the weighted
    mean and spread of the anchors).  So the penalty is
    (λ / H) · ½ · Σ_i [W_i (θ_i − c_i)² + r_i], exact for any number of tasks,
    stored as W, c (one tensor each per parameter), the scalar Σ_i r_i and H.
    :meth:`add_task` updates them with Chan et al.'s pairwise rule (no
    cancellation).  Where W_i = 0 (a head no task used) c_i is the latest anchor.
    """

    def __init__(self, weight: Importance | None = None, centre: dict[str, torch.Tensor] | None = None,
                 spread: float = 0.0, harmonic: float = 0.0, n_tasks: int = 0):
        self.weight = weight or {}
        self.centre = centre or {}
        self.spread = spread
        self.harmonic = harmonic
        self.n_tasks = n_tasks

    def add_task(self, importance: Importance, anchor: dict[str, torch.Tensor]) -> None:
        """Add one task's Ω_t (importance) and θ*_t (anchor); raises ValueError if Σ Ω_t = 0."""
        total = float(sum(v.double().sum() for v in importance.values()))
        if total <= 0:
            raise ValueError("the task's importance is zero everywhere; MAS-α cannot scale it")
        for n, omega in importance.items():
            w_new = omega / total
            theta = anchor[n].detach()
            w_old = self.weight.get(n, torch.zeros_like(w_new))
            c_old = self.centre.get(n, theta)
            w = w_old + w_new
            safe = torch.where(w > 0, w, torch.ones_like(w))
            c = torch.where(w > 0, (w_old * c_old + w_new * theta) / safe, theta)
            self.spread += float((w_old * (c_old - c).pow(2) + w_new * (theta - c).pow(2)).double().sum())
            self.weight[n], self.centre[n] = w, c
        self.harmonic += 1.0 / total
        self.n_tasks += 1

    def penalty(self, model: nn.Module, alpha_sum: float) -> torch.Tensor:
        """Σ_t α_t · ½ Σ_i Ω_ti (θ_i − θ*_ti)² with Σ_t α_t = ``alpha_sum``; 0 before any task."""
        if self.n_tasks == 0:
            return torch.zeros((), device=next(model.parameters()).device)
        params = dict(model.named_parameters())
        quadratic = sum((w * (params[n] - self.centre[n]).pow(2)).sum() for n, w in self.weight.items())
        return alpha_sum / self.harmonic * 0.5 * (quadratic + self.spread)

    def to(self, device) -> "AlphaScaledQuadratic":
        self.weight = {n: v.to(device) for n, v in self.weight.items()}
        self.centre = {n: v.to(device) for n, v in self.centre.items()}
        return self

    def to_carry(self) -> dict[str, torch.Tensor]:
        """Flat tensors for a state file (``weight.<param>``, ``centre.<param>``, scalars)."""
        carry = {f"weight.{n}": v.detach().cpu() for n, v in self.weight.items()}
        carry.update({f"centre.{n}": v.detach().cpu() for n, v in self.centre.items()})
        carry.update({"spread": torch.tensor(self.spread, dtype=torch.float64),
                      "harmonic": torch.tensor(self.harmonic, dtype=torch.float64),
                      "n_tasks": torch.tensor(self.n_tasks)})
        return carry

    @classmethod
    def from_carry(cls, carry: dict[str, torch.Tensor]) -> "AlphaScaledQuadratic":
        """Inverse of :meth:`to_carry`; an empty carry gives the empty sum."""
        if not carry:
            return cls()
        return cls({n[len("weight."):]: v for n, v in carry.items() if n.startswith("weight.")},
                   {n[len("centre."):]: v for n, v in carry.items() if n.startswith("centre.")},
                   float(carry["spread"]), float(carry["harmonic"]), int(carry["n_tasks"]))
