"""Learn to Grow (Li et al. ICML 2019; docs/spec.md §9): per conv layer, reuse an
earlier option, adapt it with a new 1×1 conv, or add a new conv, chosen by a
first-order DARTS search on the task's training set; then the chosen network
trains in the shared loop.

The search is one documented bilevel loop (:func:`first_order_darts`) beside the
shared training loop (:func:`par.training.fit`): it alternates an architecture
step (α, on one half of the training set) with a weight step (on the other
half), which the shared loop's one optimizer does not do.

Torch is imported inside the hooks: the workflow imports this module while it
is parsed (tests/test_startup.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from par.learners.context import SearchResult
from par.learners.growing import Growing
from par.learners.methods import Finetune, register_method
from par.learners.options import ConfigSection, Option
from par.learners.strategies import register_strategy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from par.nets.growing_bodies import GrowBody
    from par.nets.model import MultiHeadModel
    from par.training import Batches


LTG_SECTION = ConfigSection("ltg", (
    "Learn to Grow, method ltg (docs/spec.md §9; Li et al. ICML 2019; authors' src/approaches/ltg.py, "
    "run_files/miniimagenet-20/ltg.sh): the per-task DARTS search of reuse / adapt / new per "
    "conv layer, on a 50/50 split of the task's training set; the chosen network then trains "
    "with the run's training settings."), {
    "search_epochs": Option(50, "integer", "epochs of the search (authors' o_epochs 50)", minimum=1),
    "search_lr": Option(0.01, "number", "SGD learning rate of the new weights during the search, cosine "
                        "(authors' o_lr 0.01)", exclusive_minimum=0),
    "search_weight_decay": Option(0.003, "number", "weight decay of the new weights during the search "
                                  "(authors' o_lamb 0.003)", minimum=0),
    "arch_lr": Option(0.003, "number", "Adam learning rate of the architecture weights, betas (0.5, 0.999) "
                      "(authors' o_lr_a 0.003)", exclusive_minimum=0),
    "arch_weight_decay": Option(0.003, "number", "Adam weight decay of the architecture weights "
                                "(authors' o_lamb_a 0.003)", minimum=0),
})


@register_method("ltg")
class LearnToGrow(Finetune):
    """Learn to Grow (Li et al. 2019): per layer reuse / adapt / new, by DARTS (strategy ``ltg``)."""

    body_kind = "ltg"


def new_candidates(body: GrowBody) -> nn.ModuleDict:
    """The search's new modules for one task, on the CPU: ``new`` (per layer, a new
    conv, :func:`par.nets.growing_bodies.new_conv`) and ``adapt`` (per layer and
    existing option, a new 1×1 adapter, :func:`par.nets.growing_bodies.new_adapter`),
    in this order (their initialisation draws from torch's RNG)."""
    from torch import nn

    from par.nets.growing_bodies import new_adapter, new_conv

    return nn.ModuleDict({
        "new": nn.ModuleList(new_conv(layer) for layer in body.layers),
        "adapt": nn.ModuleList(nn.ModuleList(new_adapter(layer) for _ in body.options[i])
                               for i, layer in enumerate(body.layers))})


def split_in_halves(train: Batches) -> tuple[Batches, Batches]:
    """The training set split 50/50 by a permutation drawn from ``train.generator``:
    (weight half: the first ⌊n/2⌋ images of the permutation, architecture half: the
    rest), each shuffled and augmented as ``train`` (same batch size, config and
    generator)."""
    import torch

    from par.training import Batches

    device = train.images.device
    order = torch.randperm(len(train.labels), generator=train.generator).to(device)
    half = len(order) // 2
    weight_half, arch_half = (
        Batches(train.images[idx], train.labels[idx], train.mean, train.std, train.batch_size, device,
                shuffle=True, augment=train.augment, config=train.config, generator=train.generator)
        for idx in (order[:half], order[half:]))
    return weight_half, arch_half


def first_order_darts(strategy: LtG, model: MultiHeadModel, task: int, alphas: list[torch.Tensor],
                      weight_half: Batches, arch_half: Batches, grad_clip: float) -> list[dict]:
    """First-order DARTS (Liu et al. 2019, as LtG's authors run it) for
    ``strategy.search_epochs`` epochs: per batch of ``weight_half``, one Adam step of the
    architecture weights ``alphas`` (β (0.5, 0.999), lr ``strategy.arch_lr``, weight decay
    ``strategy.arch_weight_decay``) on the next batch of ``arch_half`` (which restarts
    when it runs out), then one SGD step of the strategy's trainable weights (lr
    ``strategy.search_lr``, momentum 0.9, weight decay ``strategy.search_weight_decay``,
    cosine schedule over the epochs, gradient norm clipped to ``grad_clip``).  The loss
    and modes are the strategy's (``strategy.loss``, ``strategy.set_mode``); the body
    must be mixing by ``alphas`` (``body.mix``).

    Returns per epoch ``{"epoch", "arch_loss", "train_accuracy"}``: the mean loss of the
    architecture steps over the images they saw, and the accuracy (fraction) of the
    weight steps' batches."""
    import torch
    from torch import nn

    weights = [p for m in strategy.trainable for p in m.parameters()]
    opt_w = torch.optim.SGD(weights, lr=strategy.search_lr, momentum=0.9, weight_decay=strategy.search_weight_decay)
    opt_a = torch.optim.Adam(alphas, lr=strategy.arch_lr, betas=(0.5, 0.999), weight_decay=strategy.arch_weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, T_max=strategy.search_epochs)
    history = []
    for epoch in range(strategy.search_epochs):
        strategy.set_mode(model, task)
        arch_batches = iter(arch_half)
        total, correct, n, n_arch = 0.0, 0, 0, 0
        for x, y in weight_half:
            try:
                xa, ya = next(arch_batches)
            except StopIteration:
                arch_batches = iter(arch_half)
                xa, ya = next(arch_batches)
            opt_a.zero_grad(set_to_none=True)
            loss_a = strategy.loss(model, task, xa, ya)[0]
            loss_a.backward()
            opt_a.step()
            opt_w.zero_grad(set_to_none=True)
            for a in alphas:
                a.grad = None
            loss, logits = strategy.loss(model, task, x, y)
            loss.backward()
            nn.utils.clip_grad_norm_(weights, grad_clip)
            opt_w.step()
            total += float(loss_a.detach()) * len(ya)
            n_arch += len(ya)
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
        schedule.step()
        history.append({"epoch": epoch, "arch_loss": total / max(1, n_arch), "train_accuracy": correct / max(1, n)})
    return history


def choose_options(body: GrowBody, task: int, alphas: list[torch.Tensor], candidates: nn.ModuleDict) -> list:
    """Per layer i with c options, the argmax j of α_i: ``("reuse", j)`` (j < c),
    ``("adapt", j − c)`` (c ≤ j < 2c: the candidate adapter joins ``body.adapters``)
    or ``("new", c)`` (j = 2c: the candidate conv joins ``body.options``).  The
    unchosen candidates are left out (deleted with ``candidates``)."""
    choices = []
    for i, a in enumerate(alphas):
        c = len(body.options[i])
        j = int(a.detach().argmax())
        if j < c:
            choices.append(("reuse", j))
        elif j < 2 * c:
            body.adapters[i][str(task)] = candidates["adapt"][i][j - c]
            choices.append(("adapt", j - c))
        else:
            body.options[i].append(candidates["new"][i])
            choices.append(("new", c))
    return choices


@register_strategy("ltg")
class LtG(Growing):
    """Learn to Grow (Li et al. ICML 2019; authors' ``ltg.py``, ``resnet_ltg.py``;
    :class:`par.nets.growing_bodies.GrowBody`).  Task 1 trains a new network.  Task t ≥ 2,
    search step: per conv layer with c options, architecture weights α (2c + 1:
    reuse option i, option i + a new 1×1 adapter, a new conv; initialised
    uniform in [0, 1) as the authors) weigh a DARTS mixture; first-order DARTS
    on a 50/50 split of the training set for ``search_epochs`` (per batch of
    the weight half: one Adam step of α on a batch of the other half, β (0.5,
    0.999), lr ``arch_lr``, weight decay ``arch_weight_decay``; then one SGD
    step of the new weights, lr ``search_lr``, momentum 0.9, weight decay
    ``search_weight_decay``, cosine).  Each layer takes argmax α; the unchosen
    candidates are deleted; the chosen network (its new convs, adapters, the
    task's BatchNorms and head, from their searched weights) is then trained
    by the shared loop.  ``search`` returns, per layer, the softmax of α (6
    decimals) and per search epoch ``arch_loss`` (mean loss of the architecture
    steps over the images they saw: the shorter half's batches repeat) and
    ``train_accuracy`` (fraction, of the weight steps' batches)."""

    config = LTG_SECTION
    config_keys = {"search_epochs": "search_epochs", "search_lr": "search_lr",
                   "search_weight_decay": "search_weight_decay", "arch_lr": "arch_lr",
                   "arch_weight_decay": "arch_weight_decay"}

    def __init__(self, search_epochs: int = LTG_SECTION.default("search_epochs"),
                 search_lr: float = LTG_SECTION.default("search_lr"),
                 search_weight_decay: float = LTG_SECTION.default("search_weight_decay"),
                 arch_lr: float = LTG_SECTION.default("arch_lr"),
                 arch_weight_decay: float = LTG_SECTION.default("arch_weight_decay")):
        super().__init__()
        self.search_epochs = search_epochs
        self.search_lr = search_lr
        self.search_weight_decay = search_weight_decay
        self.arch_lr = arch_lr
        self.arch_weight_decay = arch_weight_decay

    def grow(self, model, task, n_classes, device):
        from par.nets.growing_bodies import new_conv

        body = model.body
        if not body.arch:  # the first task: a new conv in every layer
            for i, layer in enumerate(body.layers):
                body.options[i].append(new_conv(layer).to(device))
            body.set_task(task, [("new", 0)] * len(body.layers))
            self.trainable = body.task_modules(task)
        else:
            self.trainable = []
        self.add_head(model, task, n_classes, device)

    def search(self, model, task, train, val, config) -> SearchResult | None:
        """The search step for task t ≥ 2 (the first task has nothing to search):
        candidates (:func:`new_candidates`) and the task's BatchNorms, α uniform in
        [0, 1), :func:`first_order_darts` on the two halves of the training set
        (:func:`split_in_halves`), then each layer's argmax α (:func:`choose_options`);
        the chosen network's new modules and head are left to train."""
        import torch
        from torch import nn

        body = model.body
        if task in body.arch:
            return None
        device = train.images.device
        candidates = new_candidates(body).to(device)
        for i, layer in enumerate(body.layers):
            body.norms[i][str(task)] = nn.BatchNorm2d(layer[1]).to(device)
        alphas = [torch.rand(2 * len(o) + 1, device=device).requires_grad_(True) for o in body.options]
        norms = [body.norms[i][str(task)] for i in range(len(body.layers))]
        self.set_trainable(model, [candidates, *norms, model.head(task)])
        weight_half, arch_half = split_in_halves(train)
        body.mix = (task, candidates, alphas)
        try:
            history = first_order_darts(self, model, task, alphas, weight_half, arch_half, config.grad_clip)
        finally:
            body.mix = None
        body.set_task(task, choose_options(body, task, alphas, candidates))
        self.set_trainable(model, [*body.task_modules(task), model.head(task)])
        return SearchResult({"alpha_softmax": [[round(float(v), 6) for v in torch.softmax(a.detach(), 0)]
                                               for a in alphas], "history": history})

    def architecture(self, model, task):
        return model.body.architecture(task)
