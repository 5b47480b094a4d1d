"""A prepared task as the learners see it, and a benchmark's stream of them.

Tasks are numbered from 1, as T_1 … T_N in the paper.  A task holds the
dataset class ids it covers (local label = position in that list, or
``label_map`` after a label permutation) and the indices of its train /
validation / test images in the decoded dataset (:mod:`par.streams.datasets`);
validation images come from the dataset's train split.  Tasks are cut by
:func:`par.streams.prepare.prepare_task` (the workflow's ``task{t}.json``) and read
back with :func:`task_from_json`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Task:
    """One task of a stream: ``classes`` (dataset class ids, local label = position),
    ``train``/``val`` (indices into the dataset's train split), ``test`` (indices
    into its test split, or into train when ``test_source`` is ``"train"``)."""

    number: int
    classes: list[int]
    class_names: list[str]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
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

    @classmethod
    def from_tasks(cls, benchmark: str, seed: int, tasks: list[Task]) -> "Stream":
        """The stream of prepared ``tasks`` (task 1 first); its dataset and
        normalisation are the first task's (each task keeps its own)."""
        return cls(benchmark, tasks[0].dataset, int(seed), tasks[0].mean, tasks[0].std, list(tasks))

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


def task_from_json(d: dict) -> Task:
    """A :class:`Task` from a prepared task dict (``task{t}.json``)."""
    return Task(
        int(d["task"]), list(d["classes"]), list(d["class_names"]),
        np.asarray(d["train"], dtype=np.int64), np.asarray(d["val"], dtype=np.int64),
        np.asarray(d["test"], dtype=np.int64), dataset=d["dataset"], mean=tuple(d["mean"]), std=tuple(d["std"]),
        transform=list(d.get("transform", [])), image_size=d.get("image_size"),
        label_map=list(d.get("label_map", range(len(d["classes"])))), test_source=d.get("test_source", "test"),
    )


def read_task_pixels(images_path, task: Task, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W, 3) uint8 pixels after the task's transforms and (n,) int64 local
    labels of ``task``'s ``split``, reading only those images from ``images.h5``.

    Raises :class:`par.infra.io.CorruptFileError` naming the file when it is unreadable."""
    from par.infra.io import read_hdf5
    from par.streams.transforms import apply_transforms

    idx = task.indices(split)
    source = task.test_source if split == "test" else "train"
    with read_hdf5(images_path) as f:
        pixels = f[f"{source}/images"][np.sort(idx)] if len(idx) else f[f"{source}/images"][:0]
        labels = f[f"{source}/labels"][np.sort(idx)] if len(idx) else np.zeros(0, np.int64)
    return apply_transforms(pixels, task.transform, task.image_size), task.local_labels(labels)


def task_pixels(images, task: Task, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W, 3) uint8 pixels after the task's transforms (:mod:`par.streams.transforms`)
    and (n,) int64 local labels of ``task``'s ``split``.

    ``images``: a decoded dataset (:class:`par.streams.datasets.sources.ImageArrays`), or a mapping
    from dataset name to decoded dataset or to the path of its ``images.h5`` (then
    only the task's images are read)."""
    from par.streams.transforms import apply_transforms

    if isinstance(images, dict):
        images = images[task.dataset]
    if isinstance(images, (str, Path)):
        return read_task_pixels(images, task, split)
    idx = task.indices(split)
    source = task.test_source if split == "test" else "train"
    pixels = getattr(images, f"{source}_images")[idx]
    if task.dataset is not None:
        pixels = apply_transforms(pixels, task.transform, task.image_size)
    return pixels, task.local_labels(getattr(images, f"{source}_labels")[idx])


def task_data(images, task: Task, split: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """:func:`task_pixels` as CPU tensors: images (n, H, W, 3) uint8 and local
    labels (n,) int64."""
    import torch

    pixels, labels = task_pixels(images, task, split)
    return torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(labels)


def sample_ids(images, task: Task, split: str) -> np.ndarray:
    """(n,) int64 dataset sample ids (indices into the split the images come from)
    of ``task``'s ``split``, in the order :func:`task_data` returns its images:
    sorted when they are read from an ``images.h5`` path (:func:`read_task_pixels`),
    as listed in the task otherwise.  ``images`` as for :func:`task_pixels`."""
    source = images[task.dataset] if isinstance(images, dict) else images
    idx = np.asarray(task.indices(split), dtype=np.int64)
    return np.sort(idx) if isinstance(source, (str, Path)) else idx
