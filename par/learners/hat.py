"""HAT, Hard Attention to the Task (Serra et al. ICML 2018), on the one training
loop (docs/spec.md §9).  Formulas follow joansj/hat ``src/approaches/hat.py`` (the PAR
authors' ``hat.py`` is a copy of it):

- gates a_t^l = σ(s · e_t^l) per unit (:func:`gate`; the networks are in
  :mod:`par.nets.hat_bodies`);
- s annealed over each epoch's batches, s = (s_max − 1/s_max) · i / n + 1/s_max
  with i the number of training samples before the batch and n the epoch's
  (:func:`annealed_s`; eval and the final mask use s = s_max, 400);
- loss = CE + c · R, R = Σ_l Σ_i a_{t,i}^l (1 − a_{<t,i}^l) / Σ_l Σ_i (1 − a_{<t,i}^l)
  with a_{<t} the cumulative mask of the earlier tasks (for the first task
  R = Σ a / number of units) (:func:`mask_regulariser`; c 0.75);
- after backward, every shared weight's gradient is multiplied by
  1 − min(a_{<t} of its output unit, a_{<t} of its input unit)
  (:meth:`HAT.before_step`, joansj ``mask_back``), then the embeddings'
  gradients are compensated, ∂e ← ∂e · s_max/s · (cosh(clamp(s e, ±50)) + 1) / (cosh(e) + 1)
  (:func:`compensate`);
- after the optimizer step the embeddings are clamped to ±6 (``thres_emb``);
- after the task, a_{≤t} = max(a_{<t}, σ(s_max e_t)) is the cumulative mask,
  carried in the state file as ``hat.mask.<layer>`` (one float per unit).

Differences from joansj's loop, from the shared loop (par.training.fit): SGD
with momentum 0.9 and cosine annealing instead of plain SGD with lr decay on
plateau (a fresh optimizer per task, so a masked gradient leaves a zero
momentum buffer); weight decay must be 0 for the masks to hold exactly (decay
would shrink protected weights; ``config/config.yaml``'s ``hat`` run sets it,
joansj has none), and its gradient clip is joansj's 10000 (the compensated
embedding gradients are large by design; clip 5 would scale every update down).

Importing this module does not import torch.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from par.learners.options import ConfigSection, Option
from par.learners.strategies import Strategy, register_strategy

if TYPE_CHECKING:
    import torch

    from par.learners.context import TaskContext
    from par.nets.model import MultiHeadModel

log = logging.getLogger(__name__)

MASK_PREFIX = "hat.mask."


def gate(embedding: "torch.Tensor", s: float) -> "torch.Tensor":
    """HAT's gate σ(s · e) (Serra et al. Eq. 1), elementwise."""
    import torch

    return torch.sigmoid(s * embedding)


def annealed_s(seen: int, n: int, s_max: float) -> float:
    """s for a batch starting after ``seen`` of the epoch's ``n`` samples:
    (s_max − 1/s_max) · seen/n + 1/s_max (Eq. 3; joansj ``train_epoch``): 1/s_max at
    the first batch, rising linearly towards s_max."""
    return (s_max - 1.0 / s_max) * seen / n + 1.0 / s_max


def mask_regulariser(masks: dict, mask_pre: dict | None) -> "torch.Tensor":
    """R of Eq. 5 (joansj ``criterion``): Σ a (1 − a_pre) / Σ (1 − a_pre) over every
    gated layer, or Σ a / (number of units) without an earlier mask.  masks,
    mask_pre: layer name → (units,)."""
    if mask_pre is None:
        return sum(m.sum() for m in masks.values()) / sum(m.numel() for m in masks.values())
    reg = sum((m * (1 - mask_pre[k])).sum() for k, m in masks.items())
    count = sum((1 - mask_pre[k]).sum() for k in masks)
    return reg / count


def compensate(grad: "torch.Tensor", embedding: "torch.Tensor", s: float, s_max: float,
               thres_cosh: float = 50.0) -> "torch.Tensor":
    """Embedding-gradient compensation (Eq. 6; joansj ``thres_cosh`` 50):
    grad · s_max/s · (cosh(clamp(s e, ±thres_cosh)) + 1) / (cosh(e) + 1)."""
    import torch

    num = torch.cosh(torch.clamp(s * embedding, -thres_cosh, thres_cosh)) + 1
    den = torch.cosh(embedding) + 1
    return grad * (s_max / s) * num / den


# joansj hat.py: smax 400, lamb 0.75 (grid-searched there), thres_emb 6, thres_cosh 50
HAT_SECTION = ConfigSection("hat", (
    "HAT, method hat (docs/spec.md §9; Serra et al. 2018, joansj/hat src/approaches/hat.py, "
    "whose defaults these are). Needs weight decay 0 for the masks to hold (set in the "
    "hat runs of config/*.yaml)."), {
    "s_max": Option(400.0, "number", "largest gate slope s_max (joansj smax 400, grid-searched there); "
                    "s annealed from 1/s_max over each epoch's batches", exclusive_minimum=1),
    "c": Option(0.75, "number", "weight of the mask regulariser (joansj lamb 0.75)", minimum=0),
    "clamp": Option(6.0, "number", "task embeddings clamped to +-clamp after every step (joansj thres_emb 6)",
                    exclusive_minimum=0),
    "thres_cosh": Option(50.0, "number", "clamp of s*e inside cosh in the gradient compensation "
                         "(joansj thres_cosh 50)", exclusive_minimum=0),
})


@register_strategy("hat")
class HAT(Strategy):
    """HAT on a gated body (``hat_light_resnet18``; module docstring).  Carries the
    cumulative mask; raises ValueError when the body is not gated or a
    predecessor state carries no mask."""

    config = HAT_SECTION
    config_keys = {"s_max": "s_max", "c": "c", "clamp": "clamp", "thres_cosh": "thres_cosh"}
    keys_without_predecessor = ("s_max", "c", "clamp", "thres_cosh")  # the first task trains with all of them

    def __init__(self, s_max: float = HAT_SECTION.default("s_max"), c: float = HAT_SECTION.default("c"),
                 clamp: float = HAT_SECTION.default("clamp"), thres_cosh: float = HAT_SECTION.default("thres_cosh")):
        self.s_max, self.c, self.clamp, self.thres_cosh = s_max, c, clamp, thres_cosh
        self.mask_pre: dict | None = None
        self.mask_back: dict = {}
        self.s = 1.0 / s_max
        self.seen, self.n_train = 0, 1

    def start(self, model: MultiHeadModel, task: int) -> None:
        import torch

        body = model.body
        if not getattr(body, "task_conditioned", False):
            raise ValueError(f"hat needs a gated body (kind hat_light_resnet18), not {model.body_spec['kind']!r}")
        body.s_max = self.s_max
        device = next(model.parameters()).device
        carried = {k[len(MASK_PREFIX):]: v.to(device) for k, v in model.carry.items() if k.startswith(MASK_PREFIX)}
        if not carried and len(model.tasks) > 1:
            raise ValueError("hat: the predecessor state carries no cumulative mask (was it learned by hat?)")
        self.mask_pre = carried or None
        self.mask_back = {}
        if self.mask_pre is not None:
            with torch.no_grad():
                self.mask_back = {f"body.{n}": 1 - v for n, v in body.weight_masks(self.mask_pre).items()}

    def bind(self, context: TaskContext) -> None:
        self.n_train = len(context.train)

    def before_epoch(self, model, task, epoch, n_batches):
        self.seen = 0

    def loss(self, model: MultiHeadModel, task: int, x: torch.Tensor, y: torch.Tensor):
        import torch.nn.functional as F

        self.s = annealed_s(self.seen, self.n_train, self.s_max)
        self.seen += len(y)
        model.body.s = self.s
        logits = model(x, task)
        masks = model.body.mask(task, self.s)
        return F.cross_entropy(logits, y) + self.c * mask_regulariser(masks, self.mask_pre), logits

    def embeddings(self, model: MultiHeadModel):
        return [p for n, p in model.named_parameters() if n.startswith("body.embeddings.")]

    def before_step(self, model: MultiHeadModel, task: int) -> None:
        import torch

        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.grad is not None and n in self.mask_back:
                    p.grad.mul_(self.mask_back[n])
            for p in self.embeddings(model):
                if p.grad is not None:
                    p.grad.copy_(compensate(p.grad, p, self.s, self.s_max, self.thres_cosh))

    def after_step(self, model: MultiHeadModel, task: int) -> None:
        import torch

        with torch.no_grad():
            for p in self.embeddings(model):
                p.clamp_(-self.clamp, self.clamp)

    def after_task(self, model: MultiHeadModel, task: int, train) -> dict[str, torch.Tensor]:
        import torch

        with torch.no_grad():
            mask = {k: v.detach() for k, v in model.body.mask(task, self.s_max).items()}
            if self.mask_pre is not None:
                mask = {k: torch.max(self.mask_pre[k], v) for k, v in mask.items()}
        model.body.s = None
        self.cumulative = mask
        return {f"{MASK_PREFIX}{k}": v.cpu() for k, v in mask.items()}

    def record_fields(self, model: MultiHeadModel) -> dict:
        mask = getattr(self, "cumulative", None)
        if mask is None:
            return {}
        units = sum(v.numel() for v in mask.values())
        used = sum(int((v > 0.5).sum()) for v in mask.values())
        return {"n_mask_units": units, "mask_used_fraction": used / units}
