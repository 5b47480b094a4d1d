"""``images.h5``: decoded images written once and read by every later stage."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from par.streams.datasets.sources import ImageArrays
from par.infra.io import atomic_path, read_hdf5

if TYPE_CHECKING:
    import h5py


# ---- images.h5 ----------------------------------------------------------------------------

def save_images(path: str | Path, arrays: ImageArrays) -> None:
    """Write decoded images to HDF5, atomically.

    Layout: groups ``train`` and ``test``, each with ``images`` (n, H, W, C)
    uint8 and ``labels`` (n,) int64, plus ``coarse_labels`` (n,) int64 and/or
    ``users`` (n,) int64 when the dataset has them; file attributes
    ``class_names`` (JSON list), ``source``, and ``coarse_names`` /
    ``user_names`` (JSON lists) when present.
    """
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for split in ("train", "test"):
            group = f.create_group(split)
            group.create_dataset("images", data=getattr(arrays, f"{split}_images"))
            group.create_dataset("labels", data=getattr(arrays, f"{split}_labels"))
            for name in ("coarse_labels", "users"):
                values = getattr(arrays, f"{split}_{name}")
                if values is not None:
                    group.create_dataset(name, data=np.asarray(values, dtype=np.int64))
        f.attrs["class_names"] = json.dumps(arrays.class_names)
        f.attrs["source"] = arrays.source
        for name in ("coarse_names", "user_names"):
            if getattr(arrays, name) is not None:
                f.attrs[name] = json.dumps(getattr(arrays, name))


def _optional(f: h5py.File, split: str, name: str) -> np.ndarray | None:
    return f[f"{split}/{name}"][...] if f"{split}/{name}" in f else None


def _optional_names(f: h5py.File, name: str) -> list[str] | None:
    return json.loads(f.attrs[name]) if name in f.attrs else None


def load_images(path: str | Path) -> ImageArrays:
    """Read an ``images.h5`` written by :func:`save_images`; raises
    :class:`par.infra.io.CorruptFileError` naming the file when it is unreadable."""
    with read_hdf5(path) as f:
        return ImageArrays(
            train_images=f["train/images"][...],
            train_labels=f["train/labels"][...],
            test_images=f["test/images"][...],
            test_labels=f["test/labels"][...],
            class_names=json.loads(f.attrs["class_names"]),
            source=str(f.attrs["source"]),
            coarse_names=_optional_names(f, "coarse_names"),
            train_coarse_labels=_optional(f, "train", "coarse_labels"),
            test_coarse_labels=_optional(f, "test", "coarse_labels"),
            user_names=_optional_names(f, "user_names"),
            train_users=_optional(f, "train", "users"),
            test_users=_optional(f, "test", "users"),
        )


def load_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Only the labels and class names of an ``images.h5``: (train (n,), test (m,), names)."""
    with read_hdf5(path) as f:
        return f["train/labels"][...], f["test/labels"][...], json.loads(f.attrs["class_names"])


@dataclass
class LabelInfo:
    """Everything of an ``images.h5`` but the pixels (for cutting task streams):
    labels (n,) int64, class names, optional coarse labels/names and users/user
    names (None when the dataset has none), and the image shape (H, W, C)."""

    train_labels: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, int, int]
    coarse_names: list[str] | None = None
    train_coarse_labels: np.ndarray | None = None
    test_coarse_labels: np.ndarray | None = None
    user_names: list[str] | None = None
    train_users: np.ndarray | None = None
    test_users: np.ndarray | None = None


def load_label_info(path: str | Path) -> LabelInfo:
    """:class:`LabelInfo` of an ``images.h5`` (reads no pixels); raises
    :class:`par.infra.io.CorruptFileError` naming the file when it is unreadable."""
    with read_hdf5(path) as f:
        return LabelInfo(
            train_labels=f["train/labels"][...], test_labels=f["test/labels"][...],
            class_names=json.loads(f.attrs["class_names"]),
            image_shape=tuple(int(v) for v in f["train/images"].shape[1:]),
            coarse_names=_optional_names(f, "coarse_names"),
            train_coarse_labels=_optional(f, "train", "coarse_labels"),
            test_coarse_labels=_optional(f, "test", "coarse_labels"),
            user_names=_optional_names(f, "user_names"),
            train_users=_optional(f, "train", "users"),
            test_users=_optional(f, "test", "users"),
        )
