"""Synaptic Intelligence (SI; Zenke, Poole & Ganguli, ICML 2017, "Continual
Learning Through Synaptic Intelligence"), written as a user's own method: one
module, the shared loop's hooks, nothing edited elsewhere (docs/how-to/add-a-method.md).

Formulas (paper Eq. 3-5; the authors' code, github.com/ganguli-lab/pathint,
``pathint/protocols.py`` ``PATH_INT_PROTOCOL`` and ``regularizers.py``), per
parameter k of the shared body:

- path integral of the task, on every optimizer step:
  ω_k += −g_k · Δθ_k(step), where g is the gradient of the *unregularized* task
  loss (cross-entropy without the SI penalty; pathint's ``unreg_grads``) before
  the gradient clip, and Δθ(step) the change the optimizer step actually made
  (momentum, weight decay and clip included; pathint's ``deltas``).  The loop
  back-propagates the regularized loss, so :meth:`SI.before_step` takes the
  penalty's own gradient 2 c Ω (θ − θ*) off ``.grad``;
- after the task: Ω_k ← max(0, Ω_k + ω_k / (Δ_k² + ξ)) with Δ = θ_end − θ_start
  of the task (pathint: ``omega_decay='sum'`` and a ``relu``), carried to the next
  task; ω starts again from 0 with every task;
- loss of a later task: CE + c · Σ_k Ω_k (θ_k − θ*_k)² (Eq. 4, no ½), θ* the
  weights at the end of the previous task (the predecessor state).

Defaults: c = 0.1 and ξ = 1e-3, from the authors' code for the paper's split
CIFAR-10/100 experiment (Sec. 5.3): pathint ``fig_transfer_cifar/train.py``,
``PATH_INT_PROTOCOL(omega_decay='sum', xi=1e-3)`` and c = 0.1 the largest of its
``cvals`` (0, 0.01, 0.1).
Avalanche's ``SynapticIntelligencePlugin`` differs (ε = 1e-7, λ/2, Ω clipped at
0.001, the gradient of the regularized loss); this module follows the authors.

Best-epoch restore.  :func:`par.training.fit` ends in the state of the epoch with
the best validation accuracy (the first one on ties), not the last.  ω counted
after that epoch belongs to steps the restore undid, so the strategy keeps, in
:meth:`SI.after_epoch`, a snapshot of ω at every epoch whose history row has a
``val_accuracy`` strictly above every earlier one (fit's own rule), and
:meth:`SI.after_task` uses that snapshot with Δ = θ_restored − θ_start.

Heads.  Only the shared body is regularized, as FACIL's ``path_integral``: the
new task's loss gives an earlier head no gradient, so SGD (weight decay
included) leaves it untouched without a penalty.  (EWC and MAS here carry an
importance for the heads too; for an old head their penalty only holds it
against weight decay.)  The new head trains freely, as in every baseline.

Carry: ``si.omega.<body parameter name>``, one float per body parameter (Ω after
the task); the anchor θ* is the predecessor state itself.

Importing this module does not import torch.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from par.learners.methods import Finetune as FinetuneChain
from par.learners.methods import register_method
from par.learners.options import ConfigSection, Option
from par.learners.strategies import Finetune, register_strategy

if TYPE_CHECKING:
    import torch

    from par.nets.model import MultiHeadModel

OMEGA_PREFIX = "si.omega."

SI_SECTION = ConfigSection("si", "Synaptic Intelligence baseline (Zenke et al. 2017): path-integral importance "
                                 "Ω of the body's parameters, penalty c · Σ Ω (θ − θ*)²", {
    "c": Option(0.1, "number", "strength c of the penalty c · Σ Ω (θ − θ*)² (SI paper Sec. 5.3, split CIFAR-10/100: "
                               "0.1; ganguli-lab/pathint fig_transfer_cifar/train.py cvals)", minimum=0),
    "xi": Option(1e-3, "number", "damping ξ of Ω = Σ ω / (Δ² + ξ) (SI paper Sec. 5.3 and pathint "
                                 "fig_transfer_cifar/train.py: xi=1e-3)", exclusive_minimum=0),
})


@register_strategy("si")
class SI(Finetune):
    """Continue the shared model with loss = CE(new head) + c · Σ_k Ω_k (θ_k − θ*_k)²
    over the body's parameters, Ω the path-integral importance (module docstring).

    ``c`` ≥ 0 and ``xi`` > 0 (config section ``si``); ValueError otherwise.
    :meth:`start` raises ValueError when a predecessor state carries no Ω (it was
    not learned by ``si``) or an Ω for another body.
    """

    config = SI_SECTION
    config_keys = {"c": "c", "xi": "xi"}
    keys_without_predecessor = ("xi",)  # the first task has no penalty, but its Ω uses ξ

    # State of the task being learned, set by start() (prepare() always calls it) and the hooks:
    importance: dict[str, torch.Tensor]   # Ω of the earlier tasks (empty for the first task)
    anchor: dict[str, torch.Tensor]       # θ* = θ_start: the body at the start of the task
    omega: dict[str, torch.Tensor]        # ω of this task so far
    best_omega: dict[str, torch.Tensor]   # ω at the end of the best-validation epoch so far
    best_val_accuracy: float              # that epoch's validation accuracy (−inf before the first epoch)
    gradient: dict[str, torch.Tensor]     # g of the current step (unregularized), by before_step
    before: dict[str, torch.Tensor]       # θ before the current step, by before_step

    def __init__(self, c: float = SI_SECTION.default("c"), xi: float = SI_SECTION.default("xi")):
        if not c >= 0:
            raise ValueError(f"si: c must be >= 0, got {c!r}")
        if not xi > 0:
            raise ValueError(f"si: xi must be > 0, got {xi!r}")
        self.c = c
        self.xi = xi

    def start(self, model: MultiHeadModel, task: int) -> None:
        """Read Ω from the predecessor's carry, take θ* = θ_start from the body, zero ω."""
        import torch

        params = dict(model.body.named_parameters())
        device = next(model.body.parameters()).device
        carried = {n[len(OMEGA_PREFIX):]: v for n, v in model.carry.items() if n.startswith(OMEGA_PREFIX)}
        if not carried and len(model.tasks) > 1:
            raise ValueError("si: the predecessor state carries no SI importance (was it learned by si?)")
        if carried and set(carried) != set(params):
            raise ValueError(f"si: the carried importance names {len(carried)} parameters that are not the body's "
                             f"{len(params)} (a state of another body?)")
        self.importance = {n: v.to(device) for n, v in carried.items()}
        self.anchor = {n: p.detach().clone() for n, p in params.items()}
        self.omega = {n: torch.zeros_like(p) for n, p in self.anchor.items()}
        self.best_omega = {n: torch.zeros_like(p) for n, p in self.anchor.items()}
        self.best_val_accuracy = -math.inf

    def penalty(self, model: MultiHeadModel) -> torch.Tensor:
        """c · Σ_k Ω_k (θ_k − θ*_k)² over the body (SI Eq. 4), a scalar differentiable
        in the body's parameters; 0 (on the model's device) before any Ω."""
        import torch

        params = dict(model.body.named_parameters())
        total = torch.zeros((), device=next(model.body.parameters()).device)
        for n, omega in self.importance.items():
            total = total + (omega * (params[n] - self.anchor[n]).pow(2)).sum()
        return self.c * total

    def loss(self, model: MultiHeadModel, task: int, x: torch.Tensor, y: torch.Tensor):
        """(CE of head ``task`` + :meth:`penalty`, logits (n, K))."""
        import torch.nn.functional as F

        logits = model(x, task)
        loss = F.cross_entropy(logits, y)
        if self.importance:
            loss = loss + self.penalty(model)
        return loss, logits

    def before_step(self, model: MultiHeadModel, task: int) -> None:
        """Keep g = ``.grad`` − ∂penalty/∂θ = ``.grad`` − 2 c Ω (θ − θ*) (the unregularized
        gradient, before the clip edits ``.grad`` in place) and θ before the step."""
        import torch

        self.gradient, self.before = {}, {}
        with torch.no_grad():
            for n, p in model.body.named_parameters():
                if p.grad is None:  # frozen or unused: no step, nothing to add
                    continue
                g = p.grad.detach().clone()
                if self.importance:
                    g -= 2 * self.c * self.importance[n] * (p - self.anchor[n])
                self.gradient[n] = g
                self.before[n] = p.detach().clone()

    def after_step(self, model: MultiHeadModel, task: int) -> None:
        """ω += −g · Δθ(step), Δθ(step) = θ after − θ before the optimizer step.  A
        parameter the step left unchanged adds nothing, also when its g is not
        finite (a step skipped by the fp16 loss scaler)."""
        import torch

        with torch.no_grad():
            for n, p in model.body.named_parameters():
                if n not in self.gradient:
                    continue
                step = p - self.before[n]
                self.omega[n] -= torch.where(step != 0, self.gradient[n] * step, torch.zeros_like(step))

    def after_epoch(self, model: MultiHeadModel, task: int, epoch: int, record: dict) -> None:
        """Snapshot ω when the epoch's ``val_accuracy`` beats every earlier epoch's
        (strictly: :func:`par.training.fit` restores the first best epoch)."""
        if record["val_accuracy"] > self.best_val_accuracy:
            self.best_val_accuracy = record["val_accuracy"]
            self.best_omega = {n: w.clone() for n, w in self.omega.items()}

    def after_task(self, model: MultiHeadModel, task: int, train) -> dict[str, torch.Tensor]:
        """Ω ← max(0, Ω + ω_best / (Δ² + ξ)), Δ = θ (restored by fit) − θ_start, ω_best
        the ω of the restored epoch; returns it as the carry ``si.omega.<name>`` (CPU)."""
        import torch

        carry = {}
        with torch.no_grad():
            for n, p in model.body.named_parameters():
                delta = p - self.anchor[n]
                importance = self.best_omega[n] / (delta.pow(2) + self.xi)
                if n in self.importance:
                    importance = importance + self.importance[n]
                carry[OMEGA_PREFIX + n] = importance.clamp(min=0).cpu()
        return carry


@register_method("si")
class SIMethod(FinetuneChain):
    """One model, SI penalty on the body (Zenke et al. 2017); chains like finetune, strategy ``si``."""
