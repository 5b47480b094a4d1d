"""Episodic-memory methods on the one training loop: ER and A-GEM (docs/spec.md §9).

Both keep a small memory of earlier tasks' *training samples* and use it on
every step of a new task:

- **ER** (experience replay; Chaudhry et al. 2019, "On Tiny Episodic Memories
  in Continual Learning"; MNTDP's ``src/modules/experience_replay_llmodel.py``):
  each step trains on the new batch plus a memory batch of the same size drawn
  uniformly with replacement (MNTDP's ``extend_batch``), each sample through its
  own task's head; the loss is the mean cross-entropy over both.
- **A-GEM** (Chaudhry et al. ICLR 2019; Mammoth ``models/agem.py``): after
  backward, a reference gradient g_ref of the mean cross-entropy on a memory
  batch (each sample through its own head); if g·g_ref < 0 the update uses
  g − (g·g_ref / g_ref·g_ref) g_ref instead of g (:func:`agem_project`).

**What is carried.** The memory is a list of (task, sample id, local label):
sample ids are indices into the dataset's train split, never pixels; a job
re-reads the images from ``images.h5`` (the tasks ≤ t it is tested on are its
inputs anyway).  Per class of each earlier task, ``samples_per_class`` training
samples drawn without replacement from a generator seeded by (run seed, task),
MNTDP's fixed per-class memory (``mem_size_per_class``, its ``ring`` mode).
Task t's job adds task t − 1's samples to the memory its predecessor carries,
so a chain's first task needs no memory settings (a change of the memory size
re-runs tasks 2…N only) and the state of task t carries the memory of tasks
1…t − 1, the one it trained with.  Not network parameters: M does not count
them; the record gives ``n_memory``.

Importing this module does not import torch (the workflow reads the
strategies' traits while it is parsed).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from par.learners.options import ConfigSection, Option
from par.learners.strategies import Strategy, register_strategy

if TYPE_CHECKING:
    import torch

    from par.learners.context import TaskContext
    from par.nets.model import MultiHeadModel

log = logging.getLogger(__name__)

CARRY_KEYS = ("memory.task", "memory.sample_id", "memory.label")


def select_per_class(labels: np.ndarray, samples_per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Positions into ``labels`` ((n,) int local labels): for each class in
    increasing order, ``min(samples_per_class, n_c)`` positions drawn without
    replacement from ``rng``.  Returns (m,) int64, sorted increasingly."""
    labels = np.asarray(labels)
    chosen = []
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        k = min(samples_per_class, len(where))
        chosen.append(rng.choice(where, size=k, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)


@dataclass
class EpisodicMemory:
    """Memory items, kept sorted by (task, sample id): ``tasks``, ``sample_ids``
    (indices into the dataset's train split) and local ``labels``, each (m,) int64."""

    tasks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sample_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def task_numbers(self) -> list[int]:
        return sorted({int(u) for u in self.tasks})

    def extend(self, task: int, sample_ids: np.ndarray, labels: np.ndarray) -> None:
        """Add ``task``'s samples; raises ValueError when the task is already in the memory."""
        if task in self.task_numbers:
            raise ValueError(f"the memory already holds samples of task {task}")
        order = np.argsort(sample_ids, kind="stable")
        self.tasks = np.concatenate([self.tasks, np.full(len(order), task, np.int64)])
        self.sample_ids = np.concatenate([self.sample_ids, np.asarray(sample_ids, np.int64)[order]])
        self.labels = np.concatenate([self.labels, np.asarray(labels, np.int64)[order]])
        keys = np.lexsort((self.sample_ids, self.tasks))
        self.tasks, self.sample_ids, self.labels = self.tasks[keys], self.sample_ids[keys], self.labels[keys]

    def to_carry(self) -> dict[str, "torch.Tensor"]:
        """The three (m,) int64 tensors saved with the state (``model.carry``)."""
        import torch

        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
                zip(CARRY_KEYS, (self.tasks, self.sample_ids, self.labels))}

    @classmethod
    def from_carry(cls, carry: dict) -> "EpisodicMemory":
        """The memory in a state's ``carry`` (empty when it holds none)."""
        if CARRY_KEYS[0] not in carry:
            return cls()
        return cls(*(carry[k].cpu().numpy().astype(np.int64) for k in CARRY_KEYS))


def memory_pixels(memory: EpisodicMemory, stream, images) -> "torch.Tensor":
    """(m, H, W, 3) uint8 images of the memory items, in memory order, re-read
    from ``images`` (decoded dataset or ``images.h5`` paths) with each task's
    transforms (:func:`par.streams.tasks.task_data`).

    Raises ValueError when a re-read label differs from the stored one (the ids
    no longer name the same images: a changed dataset or stream)."""
    import torch

    from par.streams.tasks import task_data

    parts = []
    for u in memory.task_numbers:
        rows = memory.tasks == u
        ids = memory.sample_ids[rows]  # sorted: the order task_data returns either way
        subset = dataclasses.replace(stream.task(u), train=ids)
        pixels, labels = task_data(images, subset, "train")
        if not np.array_equal(labels.numpy(), memory.labels[rows]):
            raise ValueError(f"memory: the stored labels of task {u}'s samples differ from the images' labels "
                             "(the dataset or stream changed since the memory was drawn); re-run the chain")
        parts.append(pixels)
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.uint8)


class Replay:
    """Memory batches on the training device.

    ``pixels``: (m, H, W, 3) uint8; ``labels``, ``tasks``: (m,) int64.  Each
    :meth:`sample` draws ``n`` items uniformly with replacement (MNTDP's
    ``extend_batch``) from ``generator``, augments them like the training batches
    when ``config.augment``, and normalises each with its own task's statistics.
    """

    def __init__(self, memory: EpisodicMemory, pixels: "torch.Tensor", stream, config, device, generator):
        import torch

        self.pixels = pixels.to(device)
        self.labels = torch.from_numpy(memory.labels).to(device)
        self.tasks = torch.from_numpy(memory.tasks).to(device)
        self.norm = {u: stream.normalisation(stream.task(u)) for u in memory.task_numbers}
        self.config, self.generator = config, generator

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, n: int):
        """(x (n, 3, H, W) float32, y (n,) int64, tasks (n,) int64) on the device."""
        import torch

        from par.training import augment_batch, augmentation_parameters, normalize, to_float_images

        idx = torch.randint(len(self.labels), (n,), generator=self.generator).to(self.pixels.device)
        x = to_float_images(self.pixels[idx])
        if self.config.augment:
            params = augmentation_parameters(n, self.config.crop_padding, self.config.brightness, self.generator)
            x = augment_batch(x, *params, padding=self.config.crop_padding)
        tasks = self.tasks[idx]
        out = torch.empty_like(x)
        for u, (mean, std) in self.norm.items():
            rows = tasks == u
            out[rows] = normalize(x[rows], mean, std)
        return out, self.labels[idx], tasks


def per_task_cross_entropy(model: MultiHeadModel, features: "torch.Tensor", y: "torch.Tensor",
                           tasks: "torch.Tensor") -> "torch.Tensor":
    """Σ_i CE(head(tasks_i)(features_i), y_i): each sample through its own task's
    head (task-incremental, as MNTDP's ``ERLearner``).  features: (n, d).  A scalar sum."""
    import torch.nn.functional as F

    total = features.new_zeros(())
    for u in tasks.unique().tolist():
        rows = tasks == u
        total = total + F.cross_entropy(model.head(int(u))(features[rows]), y[rows], reduction="sum")
    return total


def agem_project(g: "torch.Tensor", g_ref: "torch.Tensor") -> tuple["torch.Tensor", bool]:
    """A-GEM's projection (Chaudhry et al. ICLR 2019, Eq. 11; Mammoth ``project``):
    g − (g·g_ref / g_ref·g_ref) g_ref when g·g_ref < 0, else g unchanged.

    g, g_ref: (P,) flattened gradients.  Returns (the gradient to apply, whether it
    was projected).  After a projection g̃·g_ref = 0."""
    dot = g.dot(g_ref)
    if dot < 0:
        return g - (dot / g_ref.dot(g_ref)) * g_ref, True
    return g, False


MEMORY_SECTION = ConfigSection("memory", (
    "Episodic memory of methods er and agem (docs/spec.md §9, par/learners/memory.py): sample ids "
    "of earlier tasks' training images (never pixels), carried in the state file. Not "
    "counted in M; each record gives n_memory."), {
    "samples_per_class": Option(10, "integer", (
        "training samples kept per class of every earlier task, drawn without replacement "
        "(seeded by run seed and task). The paper gives no size. A fixed number per class "
        "follows MNTDP's ER (src/modules/experience_replay_llmodel.py, mem_size_per_class, "
        "ring mode), whose memory grows by mem_size_per_class x classes with each task; the "
        "value 10 is ours (within the tiny memories of Chaudhry et al. 2019, a few samples "
        "per class), as no value of MNTDP's runs was at hand. Memory batches have the "
        "training batch size (MNTDP extend_batch; Mammoth minibatch_size)."), minimum=1),
})


class MemoryStrategy(Strategy):
    """Continue the shared model (like finetune) with an episodic memory of the
    earlier tasks (module docstring); subclasses use it in the loss (ER) or the
    gradient (A-GEM).  Raises ValueError when the predecessor state carries no
    memory of the tasks before its own."""

    config = MEMORY_SECTION
    config_keys = {"samples_per_class": "samples_per_class"}
    keys_without_predecessor = ()

    def __init__(self, samples_per_class: int = MEMORY_SECTION.default("samples_per_class")):
        if samples_per_class < 1:
            raise ValueError(f"memory.samples_per_class must be at least 1, not {samples_per_class}")
        self.samples_per_class = samples_per_class
        self.memory = EpisodicMemory()
        self.replay: Replay | None = None
        self.batch_size = 0

    def start(self, model: MultiHeadModel, task: int) -> None:
        self.memory = EpisodicMemory.from_carry(model.carry)
        self.old_tasks = sorted(u for u in model.tasks if u != task)
        expected = self.old_tasks[:-1]
        if self.memory.task_numbers != expected:
            raise ValueError(f"{self.name}: the predecessor state's memory holds tasks {self.memory.task_numbers}, "
                             f"expected {expected} (was it learned by {self.name} or another memory method?)")

    def bind(self, context: TaskContext) -> None:
        import torch

        from par.streams.tasks import sample_ids, task_data
        from par.infra.seeds import job_seed

        self.batch_size = context.train.batch_size
        if not self.old_tasks:
            return
        previous = self.old_tasks[-1]
        task = context.stream.task(previous)
        _, labels = task_data(context.images, task, "train")
        ids = sample_ids(context.images, task, "train")
        rng = np.random.default_rng(job_seed(context.stream.seed, "memory", previous))
        chosen = select_per_class(labels.numpy(), self.samples_per_class, rng)
        self.memory.extend(previous, ids[chosen], labels.numpy()[chosen])
        pixels = memory_pixels(self.memory, context.stream, context.images)
        generator = torch.Generator().manual_seed(job_seed(context.seed, "replay", context.task.number))
        self.replay = Replay(self.memory, pixels, context.stream, context.config, context.device, generator)
        log.info("%s: memory of %d samples from tasks %s (%d per class)", self.name, len(self.memory),
                 self.memory.task_numbers, self.samples_per_class)

    def after_task(self, model: MultiHeadModel, task: int, train) -> dict[str, torch.Tensor]:
        return self.memory.to_carry() if len(self.memory) else {}

    def record_fields(self, model: MultiHeadModel) -> dict:
        return {"n_memory": len(self.memory), "memory_samples_per_class": self.samples_per_class}


@register_strategy("er")
class ExperienceReplay(MemoryStrategy):
    """ER: loss = mean CE over the new batch (new head) and a memory batch of the
    same size (each sample through its own head), one body pass for both."""

    def loss(self, model: MultiHeadModel, task: int, x: torch.Tensor, y: torch.Tensor):
        import torch

        if self.replay is None:
            return super().loss(model, task, x, y)
        x_mem, y_mem, t_mem = self.replay.sample(len(y))
        features = model.body(torch.cat([x, x_mem]))
        logits = model.head(task)(features[:len(y)])
        total = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
        total = total + per_task_cross_entropy(model, features[len(y):], y_mem, t_mem)
        return total / (len(y) + len(y_mem)), logits


@register_strategy("agem")
class AGEM(MemoryStrategy):
    """A-GEM: before each optimizer step, project the gradient of the new batch's
    loss when it conflicts with g_ref, the gradient of the mean CE on a memory
    batch of the training batch size (:func:`agem_project`; Mammoth's ``observe``).
    The fraction of projected steps is added to each epoch's history row."""

    def __init__(self, samples_per_class: int = MEMORY_SECTION.default("samples_per_class")):
        super().__init__(samples_per_class)
        self.steps = self.projected = 0

    def before_epoch(self, model, task, epoch, n_batches):
        self.steps = self.projected = 0

    def before_step(self, model: MultiHeadModel, task: int) -> None:
        import torch

        if self.replay is None:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        model.zero_grad(set_to_none=True)
        x_mem, y_mem, t_mem = self.replay.sample(self.batch_size)
        (per_task_cross_entropy(model, model.body(x_mem), y_mem, t_mem) / len(y_mem)).backward()
        g_ref = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        g_new, projected = agem_project(g, g_ref)
        self.steps += 1
        self.projected += int(projected)
        offset = 0
        for p in params:
            p.grad = g_new[offset:offset + p.numel()].view_as(p).clone()
            offset += p.numel()

    def after_epoch(self, model, task, epoch, record):
        if self.replay is not None:
            record["agem_projected_fraction"] = self.projected / max(1, self.steps)
