"""Benchmarks: a dataset cut into a seeded stream of tasks (SPEC §8).

Tasks are numbered from 1, as T_1 … T_N in the paper.  A task holds the
dataset class ids it covers (local label = position in that list) and the
indices of its train / validation / test images in the decoded dataset
(:mod:`par.datasets`); validation images come from the dataset's train split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import torch

# Normalisation constants, from the authors' loaders (src/dataloaders/cifar10.py)
# and SPEC §8 for CIFAR-100.
CIFAR10_MEAN = tuple(x / 255 for x in (125.3, 123.0, 113.9))
CIFAR10_STD = tuple(x / 255 for x in (63.0, 62.1, 66.7))
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)


def _cifar10_pairs(seed: int) -> list[list[int]]:
    # Authors' order: sklearn.utils.shuffle(np.arange(5), random_state=seed), which is
    # RandomState(seed).permutation(5); task k of the unshuffled list is classes (2k, 2k+1).
    order = np.random.RandomState(seed).permutation(5)
    return [[2 * int(k), 2 * int(k) + 1] for k in order]


def cifar100_class_order(seed: int, n_train_images: int = 50000, n_classes: int = 100) -> list[int]:
    """The CIFAR-100 class order of the authors' loader (src/dataloaders/cifar100.py), SPEC §8.

    Their run seeds NumPy's global generator, draws the validation split with
    ``permutation(n_train_images)`` (see :func:`cifar100_validation_split`) and then
    shuffles ``range(n_classes)``; the same draws from ``RandomState(seed)``.
    Seed 0 starts 97, 66, 33, 19, 34, 3, 12, 2, 13, 92.  Returns n_classes class ids.
    """
    draws = np.random.RandomState(seed)
    draws.permutation(n_train_images)
    order = np.arange(n_classes)
    draws.shuffle(order)
    return [int(c) for c in order]


def cifar100_validation_split(train_labels: np.ndarray, seed: int, val_fraction: float = 0.1,
                              max_per_class: int | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per class, (validation, train) indices into the train split, as the authors'
    ``_split_per_class`` draws them (src/dataloaders/cifar100.py; SPEC §8).

    ``RandomState(seed).permutation(n)`` orders all n train images (the draw that
    precedes :func:`cifar100_class_order`); a class's images in that order, the
    first ``int(n_c · val_fraction)`` are validation (CIFAR-100: 50 of 500), the
    rest train.  ``max_per_class`` (CPU subsets; not in the authors' code) keeps
    only the first that many of a class before the cut.
    train_labels: (n,) int class ids.  Returns {class id: (val (k,), train (n_c − k,))}.
    """
    train_labels = np.asarray(train_labels)
    perm = np.random.RandomState(seed).permutation(len(train_labels))
    in_draw_order = train_labels[perm]
    split = {}
    for c in np.unique(train_labels):
        members = perm[in_draw_order == c][:max_per_class]
        n_val = int(len(members) * val_fraction)
        split[int(c)] = (members[:n_val], members[n_val:])
    return split


def _cifar100_chunks(classes_per_task: int) -> Callable[[int], list[list[int]]]:
    def split(seed: int) -> list[list[int]]:
        order = cifar100_class_order(seed)
        return [order[i:i + classes_per_task] for i in range(0, 100, classes_per_task)]
    return split


@dataclass(frozen=True)
class BenchmarkSpec:
    """How one benchmark cuts its dataset: ``task_classes(seed)`` gives the class
    ids of each task in stream order; ``validation_split`` (optional) draws the
    per-class (val, train) indices like :func:`cifar100_validation_split`,
    otherwise :func:`make_stream` draws them per class."""

    name: str
    dataset: str
    n_tasks: int
    task_classes: Callable[[int], list[list[int]]]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    validation_split: Callable[..., dict[int, tuple[np.ndarray, np.ndarray]]] | None = None


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "cifar10-5": BenchmarkSpec("cifar10-5", "cifar10", 5, _cifar10_pairs, CIFAR10_MEAN, CIFAR10_STD),
    "cifar100-10": BenchmarkSpec("cifar100-10", "cifar100", 10, _cifar100_chunks(10), CIFAR100_MEAN, CIFAR100_STD,
                                 cifar100_validation_split),
    "cifar100-20": BenchmarkSpec("cifar100-20", "cifar100", 20, _cifar100_chunks(5), CIFAR100_MEAN, CIFAR100_STD,
                                 cifar100_validation_split),
}


@dataclass(frozen=True)
class Task:
    """One task of a stream: ``classes`` (dataset class ids, local label = position),
    ``train``/``val`` (indices into the dataset's train split), ``test`` (indices
    into its test split)."""

    number: int
    classes: list[int]
    class_names: list[str]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    # Fields of a prepared stream task (par.streams): its dataset, normalisation,
    # transforms, image size and the local label of each class position.
    dataset: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    transform: list = field(default_factory=list)
    image_size: list[int] | None = None
    label_map: list[int] | None = None
    test_source: str = "test"  # "train" when a single-split dataset's test images were carved from it

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def indices(self, split: str) -> np.ndarray:
        """Indices of ``split`` (``train``, ``val`` or ``test``)."""
        return {"train": self.train, "val": self.val, "test": self.test}[split]

    def local_labels(self, dataset_labels: np.ndarray) -> np.ndarray:
        """Map dataset class ids (n,) of this task's images to 0..n_classes-1."""
        label_map = self.label_map or list(range(len(self.classes)))
        lookup = {c: label_map[i] for i, c in enumerate(self.classes)}
        return np.fromiter((lookup[int(c)] for c in dataset_labels), dtype=np.int64, count=len(dataset_labels))


@dataclass(frozen=True)
class Stream:
    """A benchmark's task sequence for one seed."""

    benchmark: str
    dataset: str
    seed: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tasks: list[Task]

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def task(self, number: int) -> Task:
        """Task ``number`` (1-based); raises IndexError outside 1..n_tasks."""
        for task in self.tasks:
            if task.number == number:
                return task
        raise IndexError(f"task {number} is not among the tasks {[t.number for t in self.tasks]} of {self.benchmark}")

    def normalisation(self, task: Task) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) of ``task``: its own (per-task normalisation of a stream spec)
        or the stream's."""
        return (task.mean, task.std) if task.mean is not None else (self.mean, self.std)

    def to_json(self) -> dict:
        return {
            "benchmark": self.benchmark, "dataset": self.dataset, "seed": self.seed,
            "mean": list(self.mean), "std": list(self.std),
            "tasks": [
                {"task": t.number, "classes": t.classes, "class_names": t.class_names,
                 "n_train": len(t.train), "n_val": len(t.val), "n_test": len(t.test),
                 "train": t.train.tolist(), "val": t.val.tolist(), "test": t.test.tolist()}
                for t in self.tasks
            ],
        }

    @classmethod
    def from_json(cls, obj: dict) -> "Stream":
        tasks = [
            Task(d["task"], list(d["classes"]), list(d["class_names"]),
                 np.asarray(d["train"], dtype=np.int64), np.asarray(d["val"], dtype=np.int64),
                 np.asarray(d["test"], dtype=np.int64))
            for d in obj["tasks"]
        ]
        return cls(obj["benchmark"], obj["dataset"], int(obj["seed"]), tuple(obj["mean"]), tuple(obj["std"]), tasks)


def make_stream(benchmark: str, train_labels: np.ndarray, test_labels: np.ndarray,
                class_names: list[str], seed: int, *, val_fraction: float = 0.1,
                max_train_per_class: int | None = None, max_test_per_class: int | None = None) -> Stream:
    """Cut a dataset into the tasks of ``benchmark`` for ``seed`` (SPEC §8).

    Per class, the train images are shuffled with a seeded generator, optionally
    cut to ``max_train_per_class``, and the first ``round(val_fraction * n)`` of
    them become validation images; benchmarks with a ``validation_split`` use
    it instead (CIFAR-100: the authors' draw, 450 train / 50 val per class).
    Test images are all of the class's test images, or a seeded subset of
    ``max_test_per_class``.

    Parameters
    ----------
    train_labels, test_labels: (n,), (m,) int dataset class ids.

    Raises
    ------
    KeyError
        Unknown benchmark.
    ValueError
        A class of the benchmark has no images, or a task would get no
        training or validation image.
    """
    spec = BENCHMARKS[benchmark]
    rng = np.random.default_rng(seed)
    drawn = (spec.validation_split(train_labels, seed, val_fraction, max_train_per_class)
             if spec.validation_split else {})
    tasks = []
    for number, classes in enumerate(spec.task_classes(seed), start=1):
        train, val, test = [], [], []
        for c in classes:
            if c in drawn:
                idx = np.concatenate(drawn[c])
                n_val = len(drawn[c][0])
            else:
                idx = rng.permutation(np.flatnonzero(train_labels == c))
                if max_train_per_class is not None:
                    idx = idx[:max_train_per_class]
                n_val = int(round(val_fraction * len(idx)))
            if len(idx) == 0 or n_val == 0 or n_val == len(idx):
                raise ValueError(
                    f"class {c} of {benchmark} has {len(idx)} train images; cannot split "
                    f"{val_fraction:.0%} of them into validation"
                )
            val.append(idx[:n_val])
            train.append(idx[n_val:])
            tidx = rng.permutation(np.flatnonzero(test_labels == c))
            if max_test_per_class is not None:
                tidx = tidx[:max_test_per_class]
            if len(tidx) == 0:
                raise ValueError(f"class {c} of {benchmark} has no test images")
            test.append(tidx)
        tasks.append(Task(
            number, list(classes), [class_names[c] for c in classes],
            np.sort(np.concatenate(train)), np.sort(np.concatenate(val)), np.sort(np.concatenate(test)),
        ))
    return Stream(benchmark, spec.dataset, seed, spec.mean, spec.std, tasks)


def task_data(images, task: Task, split: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Images (n, H, W, 3) uint8 and local labels (n,) int64 of ``task``'s ``split``,
    as CPU tensors, after the task's transforms (:mod:`par.transforms`).

    ``images``: a decoded dataset (:class:`par.datasets.ImageArrays`), or a mapping
    from dataset name to decoded dataset or to the path of its ``images.h5`` (then
    only the task's images are read)."""
    import torch

    from par.transforms import apply_transforms

    if isinstance(images, dict):
        images = images[task.dataset]
    if isinstance(images, (str, Path)):
        from par.streams import read_task_pixels

        pixels, labels = read_task_pixels(images, task, split)
        return torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(labels)
    idx = task.indices(split)
    source = task.test_source if split == "test" else "train"
    pixels = getattr(images, f"{source}_images")[idx]
    if task.dataset is not None:
        pixels = apply_transforms(pixels, task.transform, task.image_size)
    labels = task.local_labels(getattr(images, f"{source}_labels")[idx])
    return torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(labels)
