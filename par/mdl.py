"""MDL cell search (MdeNAS, Zheng et al. ICCV 2019) as PAR uses it (paper Sec. 3.3; SPEC §4).

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

from par.cells import N_EDGES, PRIMITIVES, STEPS, Genotype, SuperNet
from par.training import Batches, TrainConfig, evaluate

log = logging.getLogger(__name__)

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

        ``probs`` (authors' code, SPEC default): p ← softmax(p + lr·(v1 − v2)), so
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
    """Discrete cell from edge probabilities p (14, 6) (SPEC §4).

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
    """Hyperparameters of the cell search (defaults: authors' run_files/*/par2.sh)."""

    sample_epochs: int = 100
    lr: float = 0.01
    lr_min: float = 1e-5          # cosine floor of the supernet optimizer (authors' mdenas_search.py)
    momentum: float = 0.9
    weight_decay: float = 0.003
    lr_search: float = 0.01       # step of the distribution update
    mdl_update: str = "probs"
    batch_size: int = 64
    grad_clip: float = 5.0        # authors' AutoSearch default
    channels: int = 64
    n_layers: int = 4
    augment: bool = True
    factorized_reduce_bn: bool = False   # authors' code: FactorizedReduce skips its BN (SPEC §4)


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
    """Split a task's training set 50/50 at random into search-train and search-val (SPEC §4).

    The first ⌊n/2⌋ of a random permutation train the supernet (shuffled), the
    rest score sampled architectures.  Both halves get the training augmentation
    when ``config.augment`` (authors' code: both samplers read the training
    dataset with its transforms), drawn from ``generator``.
    Images: (n, H, W, 3) uint8; labels: (n,).  Returns (search-train, search-val).
    """
    n = len(train_labels)
    perm = torch.randperm(n, generator=generator)
    fit_idx, val_idx = perm[: n // 2], perm[n // 2:]
    train_cfg = TrainConfig(batch_size=config.batch_size, augment=config.augment)
    fit_batches = Batches(train_images[fit_idx], train_labels[fit_idx], mean, std, config.batch_size, device,
                          shuffle=True, augment=config.augment, config=train_cfg, generator=generator)
    val_batches = Batches(train_images[val_idx], train_labels[val_idx], mean, std, 500, device,
                          augment=config.augment, config=train_cfg, generator=generator)
    return fit_batches, val_batches


def search_cell(train_images: torch.Tensor, train_labels: torch.Tensor, n_classes: int, mean, std,
                config: SearchConfig, device: torch.device, seed: int = 0, eval_chunk: int | None = None) -> SearchResult:
    """Search a cell for one task by MDL (SPEC §4).

    train_images: (n, H, W, 3) uint8; train_labels: (n,) local labels.  The set
    is split 50/50 at random into search-train and search-val, both augmented
    (:func:`search_halves`).  Each history
    row records the sampled operations, the search-val accuracy and both edge
    distributions after the update.  ``seed`` fixes the split, the supernet's
    initial weights, the samples and the data order.  ``eval_chunk``: images per
    forward pass of the search-val scoring (the augmentation is still drawn per
    batch of 500, so it changes no number; :func:`par.training.evaluate`).
    """
    search_start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    fit_batches, val_batches = search_halves(train_images, train_labels, mean, std, config, device, generator)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SuperNet(n_classes, channels=config.channels, n_layers=config.n_layers,
                       factorized_reduce_bn=config.factorized_reduce_bn).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.sample_epochs, eta_min=config.lr_min)
    dists = {kind: EdgeDistributions.uniform() for kind in CELL_TYPES}
    history = []
    for epoch in range(config.sample_epochs):
        start = time.perf_counter()
        ops = {kind: dists[kind].sample(generator) for kind in CELL_TYPES}
        normal, reduce = ops["normal"].tolist(), ops["reduce"].tolist()
        net.train()
        total_loss, total = torch.zeros((), device=device), 0
        for x, y in fit_batches:
            loss = F.cross_entropy(net(x, normal, reduce), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            optimizer.step()
            total_loss += loss.detach() * len(y)
            total += len(y)
        total_loss = total_loss.item()
        scheduler.step()
        accuracy = evaluate(_Sampled(net, normal, reduce), 0, val_batches, eval_chunk)
        for kind in CELL_TYPES:
            dists[kind].record(ops[kind], accuracy)
            dists[kind].update(config.lr_search, config.mdl_update)
        history.append({
            "epoch": epoch, "train_loss": total_loss / max(1, total), "val_accuracy": accuracy,
            "sampled": {kind: [PRIMITIVES[i] for i in ops[kind].tolist()] for kind in CELL_TYPES},
            "p": {kind: dists[kind].p.tolist() for kind in CELL_TYPES},
            "seconds": time.perf_counter() - start,
        })
        log.info("search epoch %d/%d  loss %.4f  search-val acc %.4f  (%.1f s)", epoch + 1, config.sample_epochs,
                 history[-1]["train_loss"], accuracy, history[-1]["seconds"])
    return SearchResult(derive_genotype(dists["normal"].p, dists["reduce"].p), history,
                        time.perf_counter() - search_start)


class _Sampled(nn.Module):
    """The supernet with a fixed sampled architecture, callable as ``model(x, task)``."""

    def __init__(self, net: SuperNet, normal: list[int], reduce: list[int]):
        super().__init__()
        self.net, self.normal, self.reduce = net, normal, reduce

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        return self.net(x, self.normal, self.reduce)
