"""Image datasets: locate a source, download it when online, decode it once.

A dataset (``cifar10``, ``cifar100``) can come from any of these sources under
``data_root``, tried in this order:

1. torchvision's own layout (``cifar-10-batches-py/`` or the archive
   ``cifar-10-python.tar.gz``), read by :class:`torchvision.datasets.CIFAR10`;
2. an image-folder tree ``train/<class>/*`` and ``test/<class>/*``, either
   ``data_root`` itself or ``data_root/<name>-jpg`` (e.g. ``cifar10-jpg``);
3. a ``.tar.gz`` archive of such a tree (``data_root/cifar10-jpg.tar.gz``);
4. torchvision's download into ``data_root``, when the download host answers.

Image folders are read with :class:`torchvision.datasets.ImageFolder`, which
indexes classes by sorted folder name; for CIFAR-10/100 this is the official
label order.  Whatever the source, the images are decoded once into
``images.h5`` (uint8 arrays) that every later stage reads.
"""
from __future__ import annotations

import json
import logging
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from par.io import atomic_path, read_hdf5

log = logging.getLogger(__name__)


class DatasetUnavailable(RuntimeError):
    """The dataset is not under ``data_root`` and cannot be downloaded."""


@dataclass(frozen=True)
class DatasetInfo:
    """What we need to know to find and check one dataset."""

    name: str
    torchvision_name: str  # class in torchvision.datasets
    n_classes: int
    image_shape: tuple[int, int, int]  # (height, width, channels)

    @property
    def torchvision_class(self) -> type:
        """The torchvision dataset class, imported on first use: parsing the
        workflow must not import torchvision (issue 8)."""
        import torchvision.datasets as tvd

        return getattr(tvd, self.torchvision_name)

    @property
    def folder_name(self) -> str:
        return f"{self.name}-jpg"

    @property
    def archive_name(self) -> str:
        return f"{self.name}-jpg.tar.gz"


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", "CIFAR10", 10, (32, 32, 3)),
    "cifar100": DatasetInfo("cifar100", "CIFAR100", 100, (32, 32, 3)),
}


@dataclass(frozen=True)
class DataSource:
    """Where a dataset will be read from: ``kind`` is one of ``torchvision``,
    ``image_folder``, ``image_folder_archive`` or ``download``."""

    dataset: str
    kind: str
    path: str

    def describe(self) -> str:
        return f"{self.dataset} from {self.kind} at {self.path}"


@dataclass
class ImageArrays:
    """A decoded dataset.

    ``train_images``/``test_images``: (n, H, W, 3) uint8; ``*_labels``: (n,) int64
    class indices into ``class_names``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    source: str


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


def _is_image_tree(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def locate_source(dataset: str, data_root: str | Path, *, probe_network: bool = True) -> DataSource:
    """Find where ``dataset`` can be read from under ``data_root``.

    Raises
    ------
    KeyError
        Unknown dataset name.
    DatasetUnavailable
        Nothing usable is there and the download host does not answer; the
        message lists what to place where.
    """
    info = DATASETS[dataset]
    root = Path(data_root)
    tv = info.torchvision_class
    if (root / tv.base_folder).is_dir() or (root / tv.filename).is_file():
        return DataSource(dataset, "torchvision", str(root))
    for tree in (root, root / info.folder_name):
        if _is_image_tree(tree):
            return DataSource(dataset, "image_folder", str(tree))
    if (root / info.archive_name).is_file():
        return DataSource(dataset, "image_folder_archive", str(root / info.archive_name))
    if probe_network and url_reachable(tv.url):
        return DataSource(dataset, "download", str(root))
    raise DatasetUnavailable(
        f"Dataset '{dataset}' was not found under data_root='{root}' and {tv.url} cannot be "
        "reached (offline?). Place one of these and re-run:\n"
        f"  - torchvision's archive {root / tv.filename} (or its extracted folder {root / tv.base_folder}/)\n"
        f"  - an image-folder tree {root / info.folder_name}/train/<class>/*.jpg and .../test/<class>/*.jpg\n"
        f"  - a .tar.gz of such a tree at {root / info.archive_name}\n"
        "or set the config key 'data_root' to the folder that holds one of them."
    )


def _from_torchvision(info: DatasetInfo, root: str, download: bool) -> ImageArrays:
    try:
        train = info.torchvision_class(root, train=True, download=download)
        test = info.torchvision_class(root, train=False, download=download)
    except (urllib.error.URLError, OSError) as err:
        raise DatasetUnavailable(f"Could not download {info.name} into {root}: {err}") from err
    return ImageArrays(
        train_images=np.ascontiguousarray(train.data, dtype=np.uint8),
        train_labels=np.asarray(train.targets, dtype=np.int64),
        test_images=np.ascontiguousarray(test.data, dtype=np.uint8),
        test_labels=np.asarray(test.targets, dtype=np.int64),
        class_names=list(train.classes),
        source=f"torchvision {info.torchvision_class.__name__} at {root}",
    )


def _decode_image_folder(info: DatasetInfo, split_root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import torchvision.datasets as tvd

    folder = tvd.ImageFolder(str(split_root))
    if len(folder.classes) != info.n_classes:
        raise DatasetUnavailable(
            f"{split_root} has {len(folder.classes)} class folders; {info.name} has {info.n_classes}."
        )
    images = np.empty((len(folder.samples),) + info.image_shape, dtype=np.uint8)
    labels = np.empty(len(folder.samples), dtype=np.int64)
    for i, (path, label) in enumerate(folder.samples):
        image = np.asarray(folder.loader(path))
        if image.shape != info.image_shape:
            raise DatasetUnavailable(f"{path} has shape {image.shape}; expected {info.image_shape}.")
        images[i], labels[i] = image, label
        if (i + 1) % 10000 == 0:
            log.info("decoded %d/%d images of %s", i + 1, len(folder.samples), split_root)
    return images, labels, list(folder.classes)


def _from_image_folder(info: DatasetInfo, tree: Path, source: str) -> ImageArrays:
    train_images, train_labels, classes = _decode_image_folder(info, tree / "train")
    test_images, test_labels, test_classes = _decode_image_folder(info, tree / "test")
    if classes != test_classes:
        raise DatasetUnavailable(f"train/ and test/ of {tree} have different class folders.")
    return ImageArrays(train_images, train_labels, test_images, test_labels, classes, source)


def _from_archive(info: DatasetInfo, archive: Path, scratch_dir: Path) -> ImageArrays:
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_dir, prefix=".extract-") as tmp:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as err:
            raise DatasetUnavailable(f"{archive} is not a readable .tar.gz archive: {err}") from err
        trees = [p for p in [Path(tmp), *Path(tmp).iterdir()] if p.is_dir() and _is_image_tree(p)]
        if not trees:
            raise DatasetUnavailable(f"{archive} holds no train/<class>/ and test/<class>/ folders.")
        return _from_image_folder(info, trees[0], f"image folder archive {archive}")


def decode(source: DataSource, scratch_dir: str | Path) -> ImageArrays:
    """Read all images of ``source`` into memory (downloading first if needed).

    ``scratch_dir`` receives the temporary extraction of an image-folder archive.
    """
    info = DATASETS[source.dataset]
    if source.kind in ("torchvision", "download"):
        return _from_torchvision(info, source.path, download=source.kind == "download")
    if source.kind == "image_folder":
        return _from_image_folder(info, Path(source.path), f"image folder {source.path}")
    if source.kind == "image_folder_archive":
        return _from_archive(info, Path(source.path), Path(scratch_dir))
    raise ValueError(f"unknown data source kind {source.kind!r}")


def save_images(path: str | Path, arrays: ImageArrays) -> None:
    """Write decoded images to HDF5 (groups ``train``/``test`` with ``images`` and
    ``labels``; attributes ``class_names`` (JSON list) and ``source``), atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for split in ("train", "test"):
            group = f.create_group(split)
            group.create_dataset("images", data=getattr(arrays, f"{split}_images"))
            group.create_dataset("labels", data=getattr(arrays, f"{split}_labels"))
        f.attrs["class_names"] = json.dumps(arrays.class_names)
        f.attrs["source"] = arrays.source


def load_images(path: str | Path) -> ImageArrays:
    """Read an ``images.h5`` written by :func:`save_images`; raises
    :class:`par.io.CorruptFileError` naming the file when it is unreadable."""
    with read_hdf5(path) as f:
        return ImageArrays(
            train_images=f["train/images"][...],
            train_labels=f["train/labels"][...],
            test_images=f["test/images"][...],
            test_labels=f["test/labels"][...],
            class_names=json.loads(f.attrs["class_names"]),
            source=str(f.attrs["source"]),
        )


def load_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Only the labels and class names of an ``images.h5``: (train (n,), test (m,), names)."""
    with read_hdf5(path) as f:
        return f["train/labels"][...], f["test/labels"][...], json.loads(f.attrs["class_names"])
