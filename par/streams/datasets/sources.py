"""The dataset registry: decoded arrays, where a dataset is read from, locating and decoding a source."""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class DatasetUnavailable(RuntimeError):
    """The dataset is not under ``data_root`` and cannot be downloaded, or its
    files do not hold what the dataset must hold."""


# ---- decoded arrays -----------------------------------------------------------------------

@dataclass
class ImageArrays:
    """A decoded dataset.

    ``train_images``/``test_images``: (n, H, W, C) uint8 at the dataset's native
    shape (C = 1 for grayscale, 3 for RGB); ``*_labels``: (n,) int64 class
    indices into ``class_names``.  A dataset without a test split has empty
    test arrays, ``(0, H, W, C)`` and ``(0,)``.

    Optional, all-or-nothing per group:

    * ``coarse_names`` with ``train_coarse_labels``/``test_coarse_labels`` (n,)
      int64 indices into it: CIFAR-100's 20 superclasses (CIFAR100-coarse).
    * ``user_names`` (string order) with ``train_users``/``test_users`` (n,)
      int64 indices into it: F-CelebA's LEAF users (one task per user).

    Raises ValueError when the arrays disagree in length, dtype or shape.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    source: str
    coarse_names: list[str] | None = None
    train_coarse_labels: np.ndarray | None = None
    test_coarse_labels: np.ndarray | None = None
    user_names: list[str] | None = None
    train_users: np.ndarray | None = None
    test_users: np.ndarray | None = None

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
                raise ValueError(f"{split}: images {images.dtype} {images.shape} and labels {labels.shape} "
                                 "must be uint8 (n, H, W, C) and (n,)")
            if len(labels) and not (0 <= labels.min() and labels.max() < len(self.class_names)):
                raise ValueError(f"{split} labels outside 0..{len(self.class_names) - 1}")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(f"train images {self.train_images.shape[1:]} and test images "
                             f"{self.test_images.shape[1:]} differ in shape")
        for names, field_name in (("coarse_names", "coarse_labels"), ("user_names", "users")):
            given = [getattr(self, names)] + [getattr(self, f"{s}_{field_name}") for s in ("train", "test")]
            if any(g is None for g in given) and not all(g is None for g in given):
                raise ValueError(f"{names}, train_{field_name} and test_{field_name} go together")
            for split in ("train", "test") if given[0] is not None else ():
                values = getattr(self, f"{split}_{field_name}")
                if len(values) != len(getattr(self, f"{split}_labels")):
                    raise ValueError(f"{split}_{field_name} has {len(values)} entries for "
                                     f"{len(getattr(self, f'{split}_labels'))} images")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.train_images.shape[1:])


# ---- registry -----------------------------------------------------------------------------

@dataclass(frozen=True)
class DataSource:
    """Where a dataset will be read from: ``kind`` names one of the dataset's
    readers (``torchvision``, ``download``, ``image_folder``,
    ``image_folder_archive``, ``dtd_folder``, ``dtd_archive``, ``pickle_cache``,
    ``leaf``); ``path`` is the file or folder it reads."""

    dataset: str
    kind: str
    path: str

    def describe(self) -> str:
        return f"{self.dataset} from {self.kind} at {self.path}"


Locator = Callable[[Path], "DataSource | None"]
Reader = Callable[["DatasetInfo", DataSource, Path], ImageArrays]


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: where to look for it and how to read each kind of source.

    ``image_shape`` is the decoded (H, W, C), or None for "as the files are"
    (user folders).  ``n_classes`` None means "as many as the folders say".
    ``locators`` are tried in order on ``data_root``; ``readers`` maps a source
    kind to the function that decodes it; ``placement`` lists, for the offline
    message, what can be placed where.  ``download_url`` is probed before the
    ``download`` reader is chosen (None: no public download).
    ``resize_folder_images``: image-folder images of another size are resized
    (bilinear) to ``image_shape`` instead of being refused.
    """

    name: str
    n_classes: int | None
    image_shape: tuple[int, int, int] | None
    locators: tuple[Locator, ...]
    readers: Mapping[str, Reader]
    placement: Callable[[Path], list[str]]
    download_url: str | None = None
    resize_folder_images: bool = False
    user_path: str | None = None   # set for folders registered by register_image_folder


DATASETS: dict[str, DatasetInfo] = {}


def url_reachable(url: str, timeout_seconds: float = 5.0) -> bool:
    """True when an HTTP HEAD request to ``url`` gets any answer in time.

    Always False when the environment variable ``PAR_OFFLINE`` is set to a
    non-empty value other than ``0``: the pipeline then never downloads.
    """
    if os.environ.get("PAR_OFFLINE", "") not in ("", "0"):
        return False
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_seconds)
        return True
    except urllib.error.HTTPError:
        return True  # the host answered
    except (urllib.error.URLError, OSError, ValueError):
        return False


def locate_source(dataset: str, data_root: str | Path, *, probe_network: bool = True) -> DataSource:
    """Find where ``dataset`` can be read from under ``data_root`` (no file is read
    beyond listing folders; torch is not imported).

    Raises
    ------
    KeyError
        Unknown dataset name (the message lists the known ones).
    DatasetUnavailable
        Nothing usable is there and it cannot be downloaded; the message lists
        what to place where.
    """
    if dataset not in DATASETS:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))}")
    info = DATASETS[dataset]
    root = Path(data_root)
    for locator in info.locators:
        source = locator(root)
        if source is not None:
            return source
    if info.download_url and probe_network and url_reachable(info.download_url):
        return DataSource(dataset, "download", str(root))
    if info.download_url:
        why = f"{info.download_url} cannot be reached (offline?)"
    else:
        why = "it has no public download (offline or not, its files must be placed by hand)"
    lines = "\n".join(f"  - {line}" for line in info.placement(root))
    raise DatasetUnavailable(
        f"Dataset '{dataset}' was not found under data_root='{root}' and {why}. "
        f"Place one of these and re-run:\n{lines}\n"
        "or set the config key 'data_root' to the folder that holds one of them."
    )


def decode(source: DataSource, scratch_dir: str | Path) -> ImageArrays:
    """Read all images of ``source`` into memory (downloading first if needed).

    ``scratch_dir`` receives temporary extractions (archives, ``.gz`` files);
    they are removed before returning.  Raises :class:`DatasetUnavailable` when
    the files are unreadable or do not hold the dataset's classes and shapes.
    """
    info = DATASETS[source.dataset]
    if source.kind not in info.readers:
        raise ValueError(f"unknown data source kind {source.kind!r} for {source.dataset}")
    scratch = Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    arrays = info.readers[source.kind](info, source, scratch)
    if info.n_classes is not None and len(arrays.class_names) != info.n_classes:
        raise DatasetUnavailable(f"{source.describe()} has {len(arrays.class_names)} classes; "
                                 f"{info.name} has {info.n_classes}.")
    if info.image_shape is not None and arrays.image_shape != info.image_shape:
        raise DatasetUnavailable(f"{source.describe()} decoded to images of shape {arrays.image_shape}; "
                                 f"{info.name} has {info.image_shape}.")
    return arrays
