"""The one training loop every learner shares (docs/spec.md §5).

A learner supplies hooks (:class:`TrainingHooks`): which parameters train,
which modules are in train mode, and the loss of a batch.  The loop does the
rest: SGD with momentum, cosine annealing over ``epochs``, gradient-norm
clipping, on-device augmentation, validation after every epoch, keeping the
best-validation snapshot and optional early stopping.

Images travel as uint8 (n, H, W, 3) tensors and are augmented in batches on
the training device.  torchvision's transforms draw one set of random
parameters per call, so a batch with one crop/flip/brightness per image needs
the few lines of :func:`augment_batch`; the tests check it image by image
against ``torchvision.transforms.v2.functional``.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from par.infra.config import schema_defaults
from par.streams.transforms import normalize

log = logging.getLogger(__name__)


# Defaults live in the config schema only (section training; docs/spec.md §5); the
# dataclass takes them from there, so a TrainConfig built in a test or script without
# the workflow trains as a configured run does.
_TRAINING = schema_defaults("training")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one task's training (the config section ``training``;
    ``patience``: early stopping after this many epochs without a better validation
    accuracy, applied only by strategies with ``early_stopping``)."""

    epochs: int = _TRAINING["epochs"]
    lr: float = _TRAINING["lr"]
    momentum: float = _TRAINING["momentum"]
    weight_decay: float = _TRAINING["weight_decay"]
    batch_size: int = _TRAINING["batch_size"]
    grad_clip: float = _TRAINING["grad_clip"]
    patience: int | None = _TRAINING["patience"]
    augment: bool = _TRAINING["augment"]
    crop_padding: int = _TRAINING["crop_padding"]
    brightness: float = _TRAINING["brightness"]
    eval_batch_size: int = _TRAINING["eval_batch_size"]
    amp: str = _TRAINING["amp"]
    compile: bool = _TRAINING["compile"]
    lr_min: float = 0.0   # floor of the cosine annealing (eta_min): none for tasks; the MDL search sets its lr_min


AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str = "off"):
    """Context of the forward passes under mixed precision ``amp`` (config ``training.amp``):
    ``off`` a no-op context (float32, today's numbers bit for bit), ``bf16`` or ``fp16``
    :func:`torch.autocast` on ``device``'s type (``False``, what YAML makes of an unquoted
    ``off``, means ``off``).  Raises ValueError on any other value."""
    amp = "off" if amp is False else amp
    if amp not in AMP_DTYPES:
        raise ValueError(f"training.amp must be one of {sorted(AMP_DTYPES)}, not {amp!r}")
    if AMP_DTYPES[amp] is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def to_float_images(images_uint8: torch.Tensor) -> torch.Tensor:
    """(n, H, W, 3) uint8 → (n, 3, H, W) float32 in [0, 1], in ``torch.channels_last`` memory format.

    The images are stored pixel-major (NHWC), so channels_last is the layout that
    costs no copy; it is asked for explicitly because the networks run faster on it
    (oneDNN keeps every activation channels_last; on GPUs it is the tensor-core
    layout).  Augmentation and normalisation keep it (tests/test_speed.py).
    """
    return images_uint8.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.channels_last).div_(255.0)


def augmentation_parameters(n: int, padding: int, brightness: float, generator: torch.Generator):
    """Random crop offsets (n, 2) in [0, 2·padding], flips (n,) bool and brightness
    factors (n,) in [max(0, 1 − b), 1 + b], drawn on the CPU from ``generator``."""
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    low = max(0.0, 1.0 - brightness)
    factors = low + (1.0 + brightness - low) * torch.rand(n, generator=generator)
    return offsets, flips, factors


def augment_batch(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, factors: torch.Tensor,
                  padding: int) -> torch.Tensor:
    """Per image: zero-pad by ``padding`` and crop back at ``offsets`` (top, left),
    flip horizontally where ``flips``, multiply by ``factors`` and clamp to [0, 1].

    x: (n, C, H, W) float in [0, 1]; same as torchvision's RandomCrop(padding),
    RandomHorizontalFlip and ColorJitter(brightness) applied image by image.
    """
    n, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = offsets[:, 0].to(dev).view(n, 1) + torch.arange(h, device=dev).view(1, h)
    cols = offsets[:, 1].to(dev).view(n, 1) + torch.arange(w, device=dev).view(1, w)
    cols = torch.where(flips.to(dev).view(n, 1), cols.flip(1), cols)
    batch = torch.arange(n, device=dev).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]  # (n, h, w, C)
    out = out.permute(0, 3, 1, 2) * factors.to(dev, x.dtype).view(n, 1, 1, 1)
    return out.clamp_(0.0, 1.0)


class Batches:
    """Mini-batches of (normalised, optionally augmented) images and labels on ``device``.

    images: (n, H, W, 3) uint8 tensor; labels: (n,) int64.  With ``shuffle`` the
    order (and augmentation) comes from ``generator``; a trailing batch of a
    single image is dropped when shuffling, since BatchNorm cannot train on it.

    Raises ValueError for ``batch_size < 1``, or ``batch_size < 2`` with ``shuffle`` (a
    training pass of one-image batches would train on nothing).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std, batch_size: int,
                 device: torch.device, *, shuffle: bool = False, augment: bool = False,
                 config: TrainConfig | None = None, generator: torch.Generator | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: must be at least 1")
        if shuffle and batch_size < 2:
            raise ValueError(f"batch_size {batch_size}: a shuffled (training) pass needs at least 2 images "
                             f"per batch; BatchNorm cannot train on one")
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.mean, self.std, self.batch_size = mean, std, batch_size
        self.shuffle, self.augment = shuffle, augment
        self.config = config or TrainConfig()
        self.generator = generator

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_batches(self) -> int:
        """Batches one pass yields (a shuffled pass drops a single-image tail)."""
        n, b = len(self.labels), self.batch_size
        full, tail = divmod(n, b)
        return full + (1 if tail > 1 or (tail == 1 and not (self.shuffle and n > 1)) else 0)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.images.device)  # one host-to-device copy per pass, not per batch
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.shuffle and len(idx) == 1 and n > 1:
                continue
            x = to_float_images(self.images[idx])
            if self.augment:
                params = augmentation_parameters(len(idx), self.config.crop_padding, self.config.brightness,
                                                 self.generator)
                x = augment_batch(x, *params, padding=self.config.crop_padding)
            yield normalize(x, self.mean, self.std), self.labels[idx]


class TrainingHooks(Protocol):
    """What a learner tells the shared loop (Avalanche-style hooks).

    Order inside :func:`fit`, per epoch: ``set_mode``, ``before_epoch``; per
    batch: ``loss`` → backward → ``before_step`` (gradient hook: A-GEM's
    projection, HAT's masking) → gradient-norm clip → optimizer step →
    ``after_step`` (HAT's clamp); after the epoch's validation: ``after_epoch``.
    :class:`par.learners.strategies.Strategy` gives every hook a no-op default.
    """

    early_stopping: bool

    def parameters(self, model: nn.Module, task: int) -> Iterable[nn.Parameter]:
        """Parameters the optimizer updates."""

    def set_mode(self, model: nn.Module, task: int) -> None:
        """Put modules in train/eval mode for a training epoch."""

    def loss(self, model: nn.Module, task: int, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar loss, logits of the task's head) for one batch."""

    def before_epoch(self, model: nn.Module, task: int, epoch: int, n_batches: int) -> None:
        """Called after ``set_mode`` at the start of every epoch (0-based ``epoch``)."""

    def before_step(self, model: nn.Module, task: int) -> None:
        """Called after backward, before clipping and the optimizer step: may edit ``.grad``."""

    def after_step(self, model: nn.Module, task: int) -> None:
        """Called after every optimizer step (e.g. to clamp parameters)."""

    def after_epoch(self, model: nn.Module, task: int, epoch: int, record: dict) -> None:
        """Called after the epoch's validation with its history row (may add keys to it)."""


@torch.no_grad()
def evaluate(model: nn.Module, task: int, batches: Batches, chunk: int | None = None, amp: str = "off") -> float:
    """Top-1 accuracy (fraction in [0, 1]) of head ``task`` over ``batches``, eval mode.

    ``chunk``: images per forward pass (default: the batches' own size).  Each
    batch of ``batches`` is cut into chunks, so an augmented evaluation draws its
    random parameters per batch as before and the accuracy does not depend on
    ``chunk`` (eval-mode logits are per image; tests/test_speed.py).  On the CPU
    100 is about 2x faster than 500 (README, Speed); see
    :func:`par.infra.devices.eval_batch_size`.  ``amp``: forward passes under :func:`autocast`.
    """
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=batches.images.device)
    for x, y in batches:
        for xc, yc in zip(x.split(chunk or len(y)), y.split(chunk or len(y))):
            with autocast(xc.device, amp):
                logits = model(xc, task)
            correct += (logits.argmax(1) == yc).sum()
    model.train(was_training)
    return correct.item() / max(1, len(batches))


@torch.no_grad()
def evaluate_tasks(model: nn.Module, batches: dict[int, Batches], chunk: int = 100,
                   amp: str = "off") -> dict[int, float]:
    """Top-1 accuracy of head u on ``batches[u]`` for every u, in one pass: the
    images of all tasks stream through ``model.body`` in chunks of ``chunk``
    (chunks may span tasks), then each image's features go through its task's
    head.  Equals ``{u: evaluate(model, u, b)}`` exactly (eval-mode features are
    per image) with fewer, fuller forward passes.  ``model``: a
    :class:`par.nets.model.MultiHeadModel`.  A task-conditioned body (HAT's gates,
    the growing networks' columns and paths) gives other features per task, so
    each task is then evaluated on its own (:func:`evaluate`).  ``amp``: forward
    passes under :func:`autocast`.
    """
    if getattr(model.body, "task_conditioned", False):
        return {u: evaluate(model, u, b, chunk, amp) for u, b in batches.items()}
    was_training = model.training
    model.eval()
    correct = {u: torch.zeros((), dtype=torch.long, device=b.images.device) for u, b in batches.items()}
    pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def flush():
        x_all = torch.cat([x for _, x, _ in pending])
        with autocast(x_all.device, amp):
            features = model.body(x_all)
            sizes = [len(x) for _, x, _ in pending]
            logits = [model.head(u)(f) for (u, _, _), f in zip(pending, features.split(sizes))]
        for (u, _, y), z in zip(pending, logits):
            correct[u] += (z.argmax(1) == y).sum()
        pending.clear()

    filled = 0
    for u, b in batches.items():
        for x, y in b:
            while len(y):
                take = min(chunk - filled, len(y))
                pending.append((u, x[:take], y[:take]))
                x, y, filled = x[take:], y[take:], filled + take
                if filled == chunk:
                    flush()
                    filled = 0
    if pending:
        flush()
    model.train(was_training)
    return {u: correct[u].item() / max(1, len(batches[u])) for u in batches}


# Callbacks of the enclosing on_epoch_end() blocks, innermost last (a context variable).
_EPOCH_END: contextvars.ContextVar[tuple[Callable[[int, dict], None], ...]] = contextvars.ContextVar(
    "par_training_epoch_end", default=())


@contextlib.contextmanager
def on_epoch_end(callback: Callable[[int, dict], None]) -> Iterator[None]:
    """Within the block, every :func:`fit` calls ``callback(task, row)`` after each epoch:
    ``row`` is a copy of the epoch's history row (``epoch``, ``train_loss``,
    ``train_accuracy``, ``val_accuracy``, ``seconds``, ...) plus ``lr``, the learning rate the
    epoch trained with.  An observer only (e.g. :class:`par.results.curves.EpochCurves`):
    what it does with the row changes no number of the fit.  Blocks nest; callbacks run
    outermost first."""
    token = _EPOCH_END.set(_EPOCH_END.get() + (callback,))
    try:
        yield
    finally:
        _EPOCH_END.reset(token)


@dataclass
class FitResult:
    """What :func:`fit` measured: the best validation accuracy and its epoch
    (0-based), epochs run, and one history row per epoch."""

    best_val_accuracy: float
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)


def fit(model: nn.Module, task: int, hooks: TrainingHooks, train: Batches, val: Batches,
        config: TrainConfig, eval_chunk: int | None = None, *, keep_best: bool = True) -> FitResult:
    """Train head ``task`` (and whatever ``hooks.parameters`` returns) on ``train``.

    SGD with momentum, cosine annealing from ``config.lr`` to ``config.lr_min``
    over ``config.epochs``, gradient-norm clip ``config.grad_clip``.  After each
    epoch the validation accuracy is measured; with ``keep_best`` the model ends
    in the state of the best epoch (first one on ties), without it in the state
    of the last epoch (the MDL search's supernet: only its edge distributions
    matter, so no snapshot is copied).  With ``hooks.early_stopping`` and
    ``config.patience``, training stops after ``patience`` epochs without
    improvement (authors' ``lr_patience``; docs/spec.md §5).  ``eval_chunk``: images
    per forward pass of the validation (:func:`evaluate`; changes no number).
    ``config.amp``: the batch loss and the validation under :func:`autocast`; with
    ``fp16`` the loss is scaled (:class:`torch.amp.GradScaler`) and the gradients are
    unscaled before ``hooks.before_step`` and the clip, so hooks and the clip see true
    gradients; a step with inf/NaN gradients is skipped by the scaler.

    History rows: ``epoch``, ``train_loss``, ``train_accuracy``, ``val_accuracy``,
    ``seconds`` (wall, training and validation); on a CUDA device also
    ``cuda_train_seconds``, the training steps' device time from CUDA events.
    Each row (with the epoch's ``lr``) also goes to the callbacks of the enclosing
    :func:`on_epoch_end` blocks, e.g. the TensorBoard curves (par.results.curves).
    """
    params = [p for p in hooks.parameters(model, task) if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr_min)
    best_acc, best_epoch, best_state = -1.0, -1, None
    history = []
    since_best = 0
    device = train.images.device
    autocast(device, config.amp)  # a bad value fails here, before the first batch
    scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None
    cuda = device.type == "cuda"
    for epoch in range(config.epochs):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]  # this epoch's, before the scheduler steps
        if cuda:  # device time of the epoch's training steps, free of host-side waiting
            events = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            events[0].record()
        hooks.set_mode(model, task)
        hooks.before_epoch(model, task, epoch, train.n_batches)
        # Running sums stay on the device: no host synchronisation per batch.
        total_loss = torch.zeros((), device=train.images.device)
        total_correct = torch.zeros((), dtype=torch.long, device=train.images.device)
        total = 0
        for x, y in train:
            with autocast(device, config.amp):
                loss, logits = hooks.loss(model, task, x, y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            hooks.before_step(model, task)
            nn.utils.clip_grad_norm_(params, config.grad_clip)
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
                scaler.update()
            hooks.after_step(model, task)
            total_loss += loss.detach() * len(y)
            total_correct += (logits.argmax(1) == y).sum()
            total += len(y)
        scheduler.step()
        if cuda:
            events[1].record()
        val_acc = evaluate(model, task, val, eval_chunk, config.amp)  # .item(): the host waits for the device
        seconds = time.perf_counter() - start
        history.append({"epoch": epoch, "train_loss": total_loss.item() / max(1, total),
                        "train_accuracy": total_correct.item() / max(1, total), "val_accuracy": val_acc,
                        "seconds": seconds})
        if cuda:
            history[-1]["cuda_train_seconds"] = events[0].elapsed_time(events[1]) / 1000.0
        hooks.after_epoch(model, task, epoch, history[-1])
        for callback in _EPOCH_END.get():
            callback(task, {**history[-1], "lr": lr})
        improved = val_acc > best_acc
        if improved:
            best_acc, best_epoch, since_best = val_acc, epoch, 0
            if keep_best:
                best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
        log.info("task %d epoch %d/%d  loss %.4f  train acc %.4f  val acc %.4f%s  (%.1f s)", task, epoch + 1,
                 config.epochs, history[-1]["train_loss"], history[-1]["train_accuracy"], val_acc,
                 " *" if improved else "", seconds)
        if hooks.early_stopping and config.patience and since_best >= config.patience:
            log.info("early stop: no better validation accuracy for %d epochs", config.patience)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(best_acc, best_epoch, len(history), history)
