"""Seeded class orders and validation draws of the paper's benchmarks (docs/spec.md §8).

The stream specs (``par/data/streams/*.yaml``) name these orders as
``classes: {order: <name>, size: k}``: task t's classes are the t-th chunk of k
of the seed's order.  They reproduce the authors' loaders draw for draw, so a
seed gives the authors' tasks.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def cifar10_pairs(seed: int) -> list[list[int]]:
    """The CIFAR10-5 tasks of the authors' loader (src/dataloaders/cifar10.py): five
    class pairs.  Their order is ``sklearn.utils.shuffle(np.arange(5), random_state=seed)``,
    which is ``RandomState(seed).permutation(5)``; pair k is classes (2k, 2k+1).
    Seed 0 gives [[4, 5], [0, 1], [2, 3], [6, 7], [8, 9]]."""
    order = np.random.RandomState(seed).permutation(5)
    return [[2 * int(k), 2 * int(k) + 1] for k in order]


def cifar100_class_order(seed: int, n_train_images: int = 50000, n_classes: int = 100) -> list[int]:
    """The CIFAR-100 class order of the authors' loader (src/dataloaders/cifar100.py).

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
    ``_split_per_class`` draws them (src/dataloaders/cifar100.py; docs/spec.md §8).

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


def miniimagenet_class_order(seed: int) -> list[int]:
    """MiniImageNet-20's class order: ``RandomState(seed).permutation(100)``."""
    return [int(c) for c in np.random.RandomState(seed).permutation(100)]


# Seeded class orders of the paper's benchmarks: seed → list of dataset class ids;
# a task's classes are a consecutive chunk of it ({"order": name, "size": k}).
CLASS_ORDERS: dict[str, Callable[[int], list[int]]] = {
    "cifar10-pairs": lambda seed: [c for pair in cifar10_pairs(seed) for c in pair],
    "cifar100-authors": cifar100_class_order,
    "miniimagenet": miniimagenet_class_order,
}
