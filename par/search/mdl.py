"""MDL cell search (MdeNAS, Zheng et al. ICCV 2019) as PAR uses it (paper Sec. 3.3; docs/spec.md §4).

Each edge of the normal and the reduction cell carries a multinomial
distribution p over the six operations.  Every sample epoch draws one
operation per edge, trains the one-shot supernet one epoch with that
architecture, and scores it on the search-validation half.  Each sampled
operation records how often it was sampled (h_e) and the last accuracy it
reached (h_a).  Then, per edge, operation j gains a vote for every operation
sampled more often but scoring lower (v1) and loses one for every operation
sampled less often but scoring higher (v2):  p ← update(p, lr · (v1 − v2)).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from par.nets.cells import SuperNet
from par.nets.genotypes import N_EDGES, PRIMITIVES, STEPS, Genotype
from par.infra.config import schema_defaults
from par.training import Batches, TrainConfig, fit

log = logging.getLogger(__name__)

_SEARCH, _TRAINING = schema_defaults("search"), schema_defaults("training")

CELL_TYPES = ("normal", "reduce")


def mdl_votes(h_e: torch.Tensor, h_a: torch.Tensor) -> torch.Tensor:
    """v1 − v2 per edge and operation.

    h_e: (E, K) sample counts; h_a: (E, K) last accuracies.  For each edge,
    v1[j] = #{i: h_e[j] < h_e[i] and h_a[j] > h_a[i]} and
    v2[j] = #{i: h_e[j] > h_e[i] and h_a[j] < h_a[i]}.  Returns (E, K) float.
    """
    de = h_e.unsqueeze(1) - h_e.unsqueeze(2)   # [e, i, j] = h_e[j] - h_e[i]
    da = h_a.unsqueeze(1) - h_a.unsqueeze(2)
    v1 = ((de < 0) & (da > 0)).sum(1)
    v2 = ((de > 0) & (da < 0)).sum(1)
    return (v1 - v2).float()


@dataclass
class EdgeDistributions:
    """The search state of one cell type: p (E, K) probabilities, logits (E, K)
    (used by the ``logits`` update), h_e (E, K) counts, h_a (E, K) accuracies."""

    p: torch.Tensor
    logits: torch.Tensor
    h_e: torch.Tensor
    h_a: torch.Tensor

    @classmethod
    def uniform(cls, n_edges: int = N_EDGES, n_ops: int = len(PRIMITIVES)) -> "EdgeDistributions":
        return cls(torch.full((n_edges, n_ops), 1.0 / n_ops, dtype=torch.float64),
                   torch.zeros(n_edges, n_ops, dtype=torch.float64),
                   torch.zeros(n_edges, n_ops, dtype=torch.long),
                   torch.zeros(n_edges, n_ops, dtype=torch.float64))

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """One operation index per edge, drawn from p: (E,) long."""
        return torch.multinomial(self.p, 1, generator=generator).view(-1)

    def record(self, ops: torch.Tensor, accuracy: float) -> None:
        """h_e[e, ops[e]] += 1 and h_a[e, ops[e]] = accuracy for every edge e."""
        edges = torch.arange(len(ops))
        self.h_e[edges, ops] += 1
        self.h_a[edges, ops] = accuracy

    def update(self, lr: float, mode: str = "probs") -> None:
        """Apply the MDL update with step ``lr``.

        ``probs`` (authors' code, the default): p ← softmax(p + lr·(v1 − v2)), so
        p stays close to uniform.  ``logits`` (MdeNAS paper): θ ← θ + lr·(v1 − v2),
        p = softmax(θ).  Raises ValueError on another mode.
        """
        step = lr * mdl_votes(self.h_e, self.h_a).to(self.p.dtype)
        if mode == "probs":
            self.p = F.softmax(self.p + step, dim=1)
        elif mode == "logits":
            self.logits = self.logits + step
            self.p = F.softmax(self.logits, dim=1)
        else:
            raise ValueError(f"mdl_update must be 'probs' or 'logits', not {mode!r}")


def derive_cell(p: torch.Tensor) -> tuple[tuple[str, int], ...]:
    """Discrete cell from edge probabilities p (14, 6) (docs/spec.md §4).

    Per edge the most probable operation other than ``none``; per intermediate
    node the two incoming edges whose chosen operation is most probable.  Ties
    go to the lower operation index and the lower input node.  Pairs are
    listed by input node.
    """
    best_p, best_op = p[:, 1:].max(dim=1)
    best_op = best_op + 1
    pairs: list[tuple[str, int]] = []
    start = 0
    for node in range(STEPS):
        n_inputs = 2 + node
        order = sorted(range(n_inputs), key=lambda j: (-float(best_p[start + j]), j))[:2]
        pairs += [(PRIMITIVES[int(best_op[start + j])], j) for j in sorted(order)]
        start += n_inputs
    return tuple(pairs)


def derive_genotype(p_normal: torch.Tensor, p_reduce: torch.Tensor) -> Genotype:
    """The genotype of the normal and reduction edge distributions (each (14, 6))."""
    return Genotype(normal=derive_cell(p_normal), reduce=derive_cell(p_reduce))


@dataclass
class SearchConfig:
    """Hyperparameters of the cell search: the config section ``search`` (authors'
    run_files/*/par2.sh), the expert's ``factorized_reduce_bn`` and the training
    section's augmentation and evaluation batch (the workflow's get_search_params
    passes them).  Defaults come from the config schema, the one place they live."""

    sample_epochs: int = _SEARCH["sample_epochs"]
    lr: float = _SEARCH["lr"]
    lr_min: float = _SEARCH["lr_min"]
    momentum: float = _SEARCH["momentum"]
    weight_decay: float = _SEARCH["weight_decay"]
    lr_search: float = _SEARCH["lr_search"]
    mdl_update: str = _SEARCH["mdl_update"]
    batch_size: int = _SEARCH["batch_size"]
    grad_clip: float = _SEARCH["grad_clip"]
    channels: int = _SEARCH["channels"]
    n_layers: int = _SEARCH["n_layers"]
    augment: bool = _SEARCH["augment"]
    factorized_reduce_bn: bool = schema_defaults("expert")["factorized_reduce_bn"]
    crop_padding: int = _TRAINING["crop_padding"]
    brightness: float = _TRAINING["brightness"]
    eval_batch_size: int = _TRAINING["eval_batch_size"]

    def train_config(self) -> TrainConfig:
        """The supernet's training as a :class:`par.training.TrainConfig` (one
        epoch per architecture sample, no early stopping)."""
        return TrainConfig(epochs=self.sample_epochs, lr=self.lr, lr_min=self.lr_min, momentum=self.momentum,
                           weight_decay=self.weight_decay, batch_size=self.batch_size, grad_clip=self.grad_clip,
                           patience=None, augment=self.augment, crop_padding=self.crop_padding,
                           brightness=self.brightness, eval_batch_size=self.eval_batch_size)


@dataclass
class SearchResult:
    """The derived genotype, one history row per sample epoch, and the seconds the
    search itself took (from the call of :func:`search_cell` to its return: the
    device is already held then, so waiting for a GPU slot is not counted in T)."""

    genotype: Genotype
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def search_halves(train_images: torch.Tensor, train_labels: torch.Tensor, mean, std, config: SearchConfig,
                  device: torch.device, generator: torch.Generator) -> tuple[Batches, Batches]:
    """Split a task's training set 50/50 at random into search-train and search-val (docs/spec.md §4).

    The first ⌊n/2⌋ of a random permutation train the supernet (shuffled), the
    rest score sampled architectures (batches of ``config.eval_batch_size``).
    Both halves get the training augmentation (``crop_padding``, ``brightness``)
    when ``config.augment`` (authors' code: both samplers read the training
    dataset with its transforms), drawn from ``generator``.
    Images: (n, H, W, 3) uint8; labels: (n,).  Returns (search-train, search-val).
    """
    n = len(train_labels)
    perm = torch.randperm(n, generator=generator)
    fit_idx, val_idx = perm[: n // 2], perm[n // 2:]
    train_cfg = config.train_config()
    fit_batches = Batches(train_images[fit_idx], train_labels[fit_idx], mean, std, config.batch_size, device,
                          shuffle=True, augment=config.augment, config=train_cfg, generator=generator)
    val_batches = Batches(train_images[val_idx], train_labels[val_idx], mean, std, config.eval_batch_size, device,
                          augment=config.augment, config=train_cfg, generator=generator)
    return fit_batches, val_batches


class _Sampled(nn.Module):
    """The supernet with the architecture sampled for the current epoch, callable
    as ``model(x, task)`` (the task is ignored: the supernet has one head)."""

    def __init__(self, net: SuperNet):
        super().__init__()
        self.net = net
        self.normal: list[int] = []
        self.reduce: list[int] = []

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        return self.net(x, self.normal, self.reduce)


class MDLSearchHooks:
    """The MDL search as hooks of :func:`par.training.fit` (paper Sec. 3.3; docs/spec.md §4).

    ``before_epoch`` samples one operation per edge of both cells from the edge
    distributions (``generator``); the epoch trains the supernet with that
    architecture (plain cross-entropy); ``after_epoch`` takes the epoch's
    search-val accuracy (fit's validation) and applies the MDL update to both
    distributions, adding the samples and distributions to the history row.
    """

    early_stopping = False

    def __init__(self, config: SearchConfig, generator: torch.Generator):
        self.config = config
        self.generator = generator
        self.dists = {kind: EdgeDistributions.uniform() for kind in CELL_TYPES}
        self.ops: dict[str, torch.Tensor] = {}

    def parameters(self, model: _Sampled, task: int):
        return model.parameters()

    def set_mode(self, model: _Sampled, task: int) -> None:
        model.train()

    def before_epoch(self, model: _Sampled, task: int, epoch: int, n_batches: int) -> None:
        self.ops = {kind: self.dists[kind].sample(self.generator) for kind in CELL_TYPES}
        model.normal, model.reduce = self.ops["normal"].tolist(), self.ops["reduce"].tolist()

    def loss(self, model: _Sampled, task: int, x: torch.Tensor, y: torch.Tensor):
        logits = model(x, task)
        return F.cross_entropy(logits, y), logits

    def before_step(self, model: _Sampled, task: int) -> None:
        pass

    def after_step(self, model: _Sampled, task: int) -> None:
        pass

    def after_epoch(self, model: _Sampled, task: int, epoch: int, record: dict) -> None:
        for kind in CELL_TYPES:
            self.dists[kind].record(self.ops[kind], record["val_accuracy"])
            self.dists[kind].update(self.config.lr_search, self.config.mdl_update)
        record["sampled"] = {kind: [PRIMITIVES[i] for i in self.ops[kind].tolist()] for kind in CELL_TYPES}
        record["p"] = {kind: self.dists[kind].p.tolist() for kind in CELL_TYPES}


def search_cell(train_images: torch.Tensor, train_labels: torch.Tensor, n_classes: int, mean, std,
                config: SearchConfig, device: torch.device, seed: int = 0,
                eval_chunk: int | None = None) -> SearchResult:
    """Search a cell for one task by MDL (docs/spec.md §4).

    train_images: (n, H, W, 3) uint8; train_labels: (n,) local labels.  The set
    is split 50/50 at random into search-train and search-val, both augmented
    (:func:`search_halves`).  The supernet trains through the shared loop
    :func:`par.training.fit` (``config.sample_epochs`` epochs, one sampled
    architecture each, :class:`MDLSearchHooks`).  Each history row records
    the epoch's training loss and accuracy, the search-val accuracy, the
    sampled operations and both edge distributions after the update.
    ``seed`` fixes the split, the supernet's initial weights, the samples and
    the data order.  ``eval_chunk``: images per forward pass of the search-val
    scoring (the augmentation is still drawn per batch, so it changes no number;
    :func:`par.training.evaluate`).
    """
    search_start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    fit_batches, val_batches = search_halves(train_images, train_labels, mean, std, config, device, generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SuperNet(n_classes, channels=config.channels, n_layers=config.n_layers,
                       factorized_reduce_bn=config.factorized_reduce_bn).to(device)
    hooks = MDLSearchHooks(config, generator)
    result = fit(_Sampled(net), 0, hooks, fit_batches, val_batches, config.train_config(),
                 eval_chunk=eval_chunk, keep_best=False)
    return SearchResult(derive_genotype(hooks.dists["normal"].p, hooks.dists["reduce"].p), result.history,
                        time.perf_counter() - search_start)
