"""Image datasets: locate a source, download it when online, decode it once.

Every dataset the paper's benchmarks need (SPEC §8) is an entry of the
registry :data:`DATASETS`; a user's own image folder joins it through
:func:`register_image_folder`.  Whatever the source, :func:`decode` turns it
into :class:`ImageArrays` (uint8 ``(n, H, W, C)`` images at the dataset's
native shape, int64 labels) and :func:`save_images` writes them once to
``images.h5``, which every later stage reads.

=================  ==========  =========================================================
name               images      sources under ``data_root``, tried in this order
=================  ==========  =========================================================
``cifar10``        32×32×3     torchvision's ``cifar-10-batches-py/`` (or
                               ``cifar-10-python.tar.gz``); image-folder tree
                               ``data_root`` itself or ``cifar10-jpg/``; its ``.tar.gz``;
                               download
``cifar100``       32×32×3     as CIFAR-10 (``cifar-100-python/``); adds the 20
                               superclass ("coarse") labels (CIFAR100-coarse)
``mnist``          28×28×1     torchvision's ``MNIST/raw/{train,t10k}-{images-idx3,
                               labels-idx1}-ubyte`` (plain or ``.gz``); tree; download
``fashion-mnist``  28×28×1     as MNIST in ``FashionMNIST/raw/``
``svhn``           32×32×3     ``train_32x32.mat`` and ``test_32x32.mat``; tree; download
``dtd``            32×32×3     ``dtd/dtd/{images,labels}`` (torchvision) or
                               ``dtd/{images,labels}`` (the extracted archive) or
                               ``dtd-r1.0.1.tar.gz``; download
``miniimagenet``   84×84×3     ``mini-imagenet-cache-{train,val,test}.pkl`` (in
                               ``data_root`` or ``miniimagenet/``); image folder
                               ``miniimagenet/<class>/*.jpg`` or
                               ``miniimagenet/{train,val,test}/<class>/*.jpg``; its ``.tar.gz``
``fceleba``        32×32×3     LEAF's CelebA: ``celeba/data/{train,test}/*.json`` (or
                               ``celeba/small/iid/{train,test}/*.json``, CAT's copy) and
                               ``celeba/data/raw/img_align_celeba/*.jpg``
=================  ==========  =========================================================

Every dataset also accepts an image-folder tree ``<name>-jpg/`` or ``<name>-png/``
(``train/<class>/*`` and ``test/<class>/*``) and a ``.tar.gz`` of it.

Conventions:

* Class order: torchvision's (CIFAR, MNIST, F-MNIST), or folder names sorted
  (image folders, DTD, as :class:`torchvision.datasets.ImageFolder` and CTrL),
  or WordNet ids sorted (MiniImageNet).  SVHN's digit 0 is label 0 (torchvision
  maps the file's 10 to 0); SVHN's class names are MNIST's, as in CTrL.
* Datasets with no official test split (MiniImageNet, a single-folder user
  dataset) put every image in the train split; the test arrays are empty,
  ``(0, H, W, C)``.  The benchmark cuts its own splits from train
  (MiniImageNet-20: 480/60/60 per class).
* DTD images vary in size; like CTrL (``ctrl/instances/DTD.py``) they are
  scaled (bicubic) so that the shorter side is 32, then centre-cropped to
  32×32 at decode time; train = ``train1.txt`` + ``val1.txt``, test =
  ``test1.txt``.  MNIST / F-MNIST stay 28×28×1: CTrL's bilinear resize to
  32×32 and channel expansion are the stream's transforms.
* F-CelebA: as CAT's loader (``dataloaders/mixceleba.py``): binary "smiling"
  labels, each image resized to 32×32 by ``transforms.Resize((32, 32))``
  (PIL bilinear).  Per-sample user ids index ``user_names``, which are sorted
  in string order, so CAT's "first 10 users" are user indices 0–9.

Nothing here imports torch or torchvision at module level (parsing the
workflow stays fast); the functions that decode or download import them.
"""
from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from par.io import atomic_path, read_hdf5

if TYPE_CHECKING:  # imported where used: the workflow imports this module while parsing (issue 8)
    import h5py

log = logging.getLogger(__name__)

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


# ---- image folders ------------------------------------------------------------------------

def _is_split_tree(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _find_tree(root: Path) -> Path:
    """The folder holding ``train/`` + ``test/`` or the class folders: ``root``
    itself, or the single folder inside it (an archive's top folder)."""
    while not _is_split_tree(root):
        subdirs = _class_dirs(root)
        if len(subdirs) == 1 and _class_dirs(subdirs[0]):
            root = subdirs[0]
        else:
            break
    return root


def _pil_mode(channels: int) -> str:
    return {1: "L", 3: "RGB"}[channels]


def _open_image(path: Path, shape: tuple[int, int, int] | None, resize: bool):
    """Open ``path`` as a PIL image in the mode of ``shape`` (or its own: L for
    grayscale, RGB otherwise), resized (bilinear) to ``shape`` when ``resize``."""
    from PIL import Image

    with Image.open(path) as img:
        if shape is None:
            mode = "L" if img.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
        else:
            mode = _pil_mode(shape[2])
        img = img.convert(mode)
    if shape is not None and img.size != (shape[1], shape[0]):
        if not resize:
            raise DatasetUnavailable(f"{path} is {img.size[0]}x{img.size[1]} pixels; expected "
                                     f"{shape[1]}x{shape[0]}.")
        # = torchvision transforms.Resize((H, W)) on a PIL image
        img = img.resize((shape[1], shape[0]), Image.BILINEAR)
    return img


def _as_hwc(img) -> np.ndarray:
    array = np.asarray(img, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def _decode_class_folders(root: Path, shape: tuple[int, int, int] | None, resize: bool
                          ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of ``root/<class>/*`` in :class:`torchvision.datasets.ImageFolder`'s
    order (classes and files sorted): (n, H, W, C) uint8, (n,) labels, class names.
    Without ``shape`` the first image fixes it and every other must match."""
    from torchvision.datasets.folder import make_dataset

    classes = [p.name for p in _class_dirs(root)]
    if not classes:
        raise DatasetUnavailable(f"{root} holds no class folders <class>/*.")
    samples = make_dataset(str(root), {c: i for i, c in enumerate(classes)}, IMAGE_EXTENSIONS,
                           allow_empty=True)
    if not samples:
        raise DatasetUnavailable(f"{root} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    if shape is None:
        shape = _as_hwc(_open_image(Path(samples[0][0]), None, False)).shape
        resize = False
    images = np.empty((len(samples),) + tuple(shape), dtype=np.uint8)
    labels = np.empty(len(samples), dtype=np.int64)
    for i, (path, label) in enumerate(samples):
        images[i], labels[i] = _as_hwc(_open_image(Path(path), shape, resize)), label
        if (i + 1) % 10000 == 0:
            log.info("decoded %d/%d images of %s", i + 1, len(samples), root)
    return images, labels, classes


def _read_tree(info: DatasetInfo, tree: Path, description: str) -> ImageArrays:
    """Decode an image-folder tree.

    * ``train/<class>/*`` and ``test/<class>/*`` (and optionally ``val/<class>/*``)
      with the same classes: train (+ val, appended) and test splits;
    * ``train/``, ``val/``, ``test/`` with disjoint classes (the few-shot layout
      of MiniImageNet's class split): all images in the train split;
    * ``<class>/*`` only: all images in the train split.

    Classes are sorted folder names; with an empty test split the test arrays
    are ``(0, H, W, C)``.
    """
    tree = _find_tree(tree)
    resize, shape = info.resize_folder_images, info.image_shape
    if not _is_split_tree(tree):
        images, labels, classes = _decode_class_folders(tree, shape, resize)
        return ImageArrays(images, labels, np.empty((0,) + images.shape[1:], np.uint8), np.empty(0, np.int64),
                           classes, description)
    parts = {}
    for part in ("train", "val", "test"):
        if (tree / part).is_dir():
            parts[part] = _decode_class_folders(tree / part, shape, resize)
            shape = shape or parts[part][0].shape[1:]
    class_sets = [set(classes) for _, _, classes in parts.values()]
    if all(c == class_sets[0] for c in class_sets):
        train = [parts[p] for p in ("train", "val") if p in parts]
        return ImageArrays(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]),
                           parts["test"][0], parts["test"][1], parts["train"][2], description)
    if sum(map(len, class_sets)) != len(set().union(*class_sets)):
        raise DatasetUnavailable(f"{', '.join(parts)} of {tree} share some class folders but not all: "
                                 "expected the same classes (a train/test split) or disjoint ones (a class split).")
    classes = sorted(set().union(*class_sets))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.concatenate([np.array([index[c] for c in names], np.int64)[local]
                             for _, local, names in parts.values()])
    order = np.argsort(labels, kind="stable")
    images = np.concatenate([images for images, _, _ in parts.values()])[order]
    return ImageArrays(images, labels[order], np.empty((0,) + images.shape[1:], np.uint8), np.empty(0, np.int64),
                       classes, description)


def _extracted(archive: Path, scratch_dir: Path):
    """Context manager: ``archive`` extracted into a temporary folder of ``scratch_dir``."""
    tmp = tempfile.TemporaryDirectory(dir=scratch_dir, prefix=".extract-")
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp.name, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        tmp.cleanup()
        raise DatasetUnavailable(f"{archive} is not a readable .tar.gz archive: {err}") from err
    return tmp


def _read_image_folder(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    return _read_tree(info, Path(source.path), f"image folder {source.path}")


def _read_image_folder_archive(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    with _extracted(Path(source.path), scratch) as tmp:
        return _read_tree(info, Path(tmp), f"image folder archive {source.path}")


IMAGE_FOLDER_READERS: dict[str, Reader] = {
    "image_folder": _read_image_folder,
    "image_folder_archive": _read_image_folder_archive,
}


def _tree_locator(name: str, folders: tuple[str, ...], *, single_split: bool = False) -> Locator:
    """Finds ``data_root/<folder>`` (a split tree, or with ``single_split`` a folder
    of class folders) or ``data_root/<folder>.tar.gz``."""
    def locate(root: Path) -> DataSource | None:
        for folder in folders:
            tree = root / folder
            if _is_split_tree(tree) or (single_split and tree.is_dir() and _class_dirs(tree)):
                return DataSource(name, "image_folder", str(tree))
        for folder in folders:
            if folder and (root / f"{folder}.tar.gz").is_file():
                return DataSource(name, "image_folder_archive", str(root / f"{folder}.tar.gz"))
        return None
    return locate


def _tree_placement(name: str, ext: str = "jpg") -> list[str]:
    return [f"an image-folder tree {{root}}/{name}-{ext}/train/<class>/*.{ext} and .../test/<class>/*.{ext}",
            f"a .tar.gz of such a tree at {{root}}/{name}-{ext}.tar.gz"]


# ---- CIFAR-10 / CIFAR-100 -----------------------------------------------------------------

def cifar100_coarse_table() -> tuple[np.ndarray, list[str], list[str]]:
    """The standard CIFAR-100 superclass assignment (``par/data/cifar100_coarse.csv``,
    as the ``coarse_labels`` of the official pickles): (fine → coarse (100,) int64,
    the 100 fine names, the 20 coarse names), both in label order."""
    with resources.files("par").joinpath("data/cifar100_coarse.csv").open() as f:
        rows = list(csv.DictReader(f))
    fine_to_coarse = np.array([int(r["coarse_label"]) for r in rows], dtype=np.int64)
    coarse_names = [""] * (fine_to_coarse.max() + 1)
    for r in rows:
        coarse_names[int(r["coarse_label"])] = r["coarse_name"]
    return fine_to_coarse, [r["fine_name"] for r in rows], coarse_names


def _with_coarse_from_table(arrays: ImageArrays) -> ImageArrays:
    fine_to_coarse, fine_names, coarse_names = cifar100_coarse_table()
    if arrays.class_names != fine_names:
        raise DatasetUnavailable(f"{arrays.source}: the class folders are not CIFAR-100's 100 classes "
                                 "(par/data/cifar100_coarse.csv), so their superclasses are unknown.")
    arrays.coarse_names = coarse_names
    arrays.train_coarse_labels = fine_to_coarse[arrays.train_labels]
    arrays.test_coarse_labels = fine_to_coarse[arrays.test_labels]
    return arrays


def _adding_coarse_from_table(reader: Reader) -> Reader:
    def read(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
        return _with_coarse_from_table(reader(info, source, scratch))
    return read


_CIFAR = {  # name: (torchvision class, folder of the pickles, archive, URL)
    "cifar10": ("CIFAR10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("CIFAR100", "cifar-100-python", "cifar-100-python.tar.gz",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}


def _read_cifar_torchvision(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    import torchvision.datasets as tvd

    class_name, folder, _, _ = _CIFAR[info.name]
    root = Path(source.path)
    # torchvision verifies the pickles' md5; with only the archive there it
    # "downloads" = verifies the archive and extracts it into root.
    download = source.kind == "download" or not (root / folder).is_dir()
    try:
        train = getattr(tvd, class_name)(str(root), train=True, download=download)
        test = getattr(tvd, class_name)(str(root), train=False, download=download)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise DatasetUnavailable(f"Could not read or download {info.name} in {root}: {err}") from err
    arrays = ImageArrays(
        train_images=np.ascontiguousarray(train.data, dtype=np.uint8),
        train_labels=np.asarray(train.targets, dtype=np.int64),
        test_images=np.ascontiguousarray(test.data, dtype=np.uint8),
        test_labels=np.asarray(test.targets, dtype=np.int64),
        class_names=list(train.classes),
        source=f"torchvision {class_name} at {root}",
    )
    if info.name == "cifar100":
        _add_cifar100_coarse_from_pickles(arrays, root / folder)
    return arrays


def _add_cifar100_coarse_from_pickles(arrays: ImageArrays, folder: Path) -> None:
    """torchvision's CIFAR100 drops the pickles' ``coarse_labels``; read them from
    the files it has just verified."""
    def load(name: str) -> dict:
        with open(folder / name, "rb") as f:
            return pickle.load(f, encoding="latin1")

    arrays.coarse_names = list(load("meta")["coarse_label_names"])
    arrays.train_coarse_labels = np.asarray(load("train")["coarse_labels"], dtype=np.int64)
    arrays.test_coarse_labels = np.asarray(load("test")["coarse_labels"], dtype=np.int64)


def _cifar_info(name: str) -> DatasetInfo:
    _, folder, archive, url = _CIFAR[name]

    def locate_torchvision(root: Path) -> DataSource | None:
        if (root / folder).is_dir() or (root / archive).is_file():
            return DataSource(name, "torchvision", str(root))
        return None

    def placement(root: Path) -> list[str]:
        return [f"torchvision's archive {root / archive} (or its extracted folder {root / folder}/)",
                *(line.format(root=root) for line in _tree_placement(name))]

    tree_readers = dict(IMAGE_FOLDER_READERS)
    if name == "cifar100":
        tree_readers = {kind: _adding_coarse_from_table(reader) for kind, reader in tree_readers.items()}
    return DatasetInfo(
        name, {"cifar10": 10, "cifar100": 100}[name], (32, 32, 3),
        # "" = data_root itself may be the tree (as in the CIFAR-only pipeline)
        locators=(locate_torchvision, _tree_locator(name, ("", f"{name}-jpg"))),
        readers={"torchvision": _read_cifar_torchvision, "download": _read_cifar_torchvision, **tree_readers},
        placement=placement, download_url=url)


# ---- MNIST / Fashion-MNIST ----------------------------------------------------------------

MNIST_RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_MNIST_LIKE = {  # name: (torchvision class = folder, a file to probe for the download)
    "mnist": ("MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"),
    "fashion-mnist": ("FashionMNIST",
                      "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"),
}


def _mnist_raw_complete(raw: Path) -> bool:
    return all((raw / f).is_file() or (raw / f"{f}.gz").is_file() for f in MNIST_RAW_FILES)


def _read_mnist_torchvision(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    import torchvision.datasets as tvd

    class_name, _ = _MNIST_LIKE[info.name]
    cls = getattr(tvd, class_name)
    root = Path(source.path)
    raw = root / class_name / "raw"
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".gunzip-") as tmp:
        if source.kind == "torchvision" and not all((raw / f).is_file() for f in MNIST_RAW_FILES):
            # torchvision reads the idx files uncompressed: gunzip them into scratch
            tmp_raw = Path(tmp) / class_name / "raw"
            tmp_raw.mkdir(parents=True)
            for f in MNIST_RAW_FILES:
                if (raw / f).is_file():
                    os.symlink((raw / f).resolve(), tmp_raw / f)
                else:
                    with gzip.open(raw / f"{f}.gz") as src, open(tmp_raw / f, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            root = Path(tmp)
        try:
            train = cls(str(root), train=True, download=source.kind == "download")
            test = cls(str(root), train=False)
        except (urllib.error.URLError, OSError, RuntimeError, ValueError, AssertionError) as err:
            raise DatasetUnavailable(f"Could not read or download {info.name} in {source.path}: {err}") from err
        return ImageArrays(
            train_images=train.data.numpy().astype(np.uint8)[..., None],
            train_labels=train.targets.numpy().astype(np.int64),
            test_images=test.data.numpy().astype(np.uint8)[..., None],
            test_labels=test.targets.numpy().astype(np.int64),
            class_names=list(cls.classes),
            source=f"torchvision {class_name} at {source.path}",
        )


def _mnist_info(name: str) -> DatasetInfo:
    class_name, url = _MNIST_LIKE[name]

    def locate_torchvision(root: Path) -> DataSource | None:
        return DataSource(name, "torchvision", str(root)) if _mnist_raw_complete(root / class_name / "raw") else None

    def placement(root: Path) -> list[str]:
        return [f"torchvision's files {root / class_name / 'raw'}/{{{','.join(MNIST_RAW_FILES)}}} "
                "(each plain or .gz)",
                *(line.format(root=root) for line in _tree_placement(name, "png"))]

    return DatasetInfo(
        name, 10, (28, 28, 1),
        locators=(locate_torchvision, _tree_locator(name, (f"{name}-png", f"{name}-jpg"))),
        readers={"torchvision": _read_mnist_torchvision, "download": _read_mnist_torchvision,
                 **IMAGE_FOLDER_READERS},
        placement=placement, download_url=url)


# ---- SVHN ---------------------------------------------------------------------------------

SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
MNIST_CLASS_NAMES = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
                     "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]


def _read_svhn(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    import torchvision.datasets as tvd

    try:  # torchvision verifies each file's md5 and reads it with scipy.io.loadmat
        train = tvd.SVHN(source.path, split="train", download=source.kind == "download")
        test = tvd.SVHN(source.path, split="test", download=source.kind == "download")
    except (urllib.error.URLError, OSError, RuntimeError, ValueError) as err:
        raise DatasetUnavailable(f"Could not read or download svhn in {source.path}: {err}") from err
    return ImageArrays(
        train_images=np.ascontiguousarray(train.data.transpose(0, 2, 3, 1), dtype=np.uint8),
        train_labels=np.asarray(train.labels, dtype=np.int64),
        test_images=np.ascontiguousarray(test.data.transpose(0, 2, 3, 1), dtype=np.uint8),
        test_labels=np.asarray(test.labels, dtype=np.int64),
        class_names=list(MNIST_CLASS_NAMES),   # CTrL's taxonomy for SVHN
        source=f"torchvision SVHN at {source.path}",
    )


def _svhn_info() -> DatasetInfo:
    def locate_torchvision(root: Path) -> DataSource | None:
        return DataSource("svhn", "torchvision", str(root)) if all((root / f).is_file() for f in SVHN_FILES) \
            else None

    def placement(root: Path) -> list[str]:
        return [f"torchvision's files {root / SVHN_FILES[0]} and {root / SVHN_FILES[1]}",
                *(line.format(root=root) for line in _tree_placement("svhn", "png"))]

    return DatasetInfo(
        "svhn", 10, (32, 32, 3),
        locators=(locate_torchvision, _tree_locator("svhn", ("svhn-png", "svhn-jpg"))),
        readers={"torchvision": _read_svhn, "download": _read_svhn, **IMAGE_FOLDER_READERS},
        placement=placement, download_url="http://ufldl.stanford.edu/housenumbers/train_32x32.mat")


# ---- DTD ----------------------------------------------------------------------------------

DTD_ARCHIVE = "dtd-r1.0.1.tar.gz"
DTD_URL = "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"


def _dtd_folder(root: Path) -> Path | None:
    """The DTD folder holding ``images/`` and ``labels/``: torchvision's
    ``root/dtd/dtd`` or the extracted archive ``root/dtd``."""
    for folder in (root / "dtd" / "dtd", root / "dtd"):
        if (folder / "images").is_dir() and (folder / "labels").is_dir():
            return folder
    return None


def resize_and_center_crop(img, size: tuple[int, int] = (32, 32)):
    """CTrL's DTD preprocessing (``ctrl/instances/DTD.py``): scale a PIL image so
    that it covers ``size`` (width, height) (shorter side → size, bicubic, the
    PIL default of CTrL's time), then crop the centre ``size``."""
    from PIL import Image

    width, height = img.size
    ratio = max(size[0] / width, size[1] / height)
    img = img.resize((int(width * ratio), int(height * ratio)), Image.BICUBIC)
    width, height = img.size
    left, top = (width - size[0]) / 2, (height - size[1]) / 2
    return img.crop((left, top, left + size[0], top + size[1]))


def _read_dtd_folder_at(folder: Path, description: str, size: tuple[int, int] = (32, 32)) -> ImageArrays:
    """CTrL's DTD: train = ``labels/train1.txt`` + ``labels/val1.txt``, test =
    ``labels/test1.txt`` (lines ``<class>/<file>.jpg``); classes sorted."""
    from PIL import Image

    splits = {"train": ("train1.txt", "val1.txt"), "test": ("test1.txt",)}
    lines = {}
    for split, files in splits.items():
        lines[split] = []
        for name in files:
            path = folder / "labels" / name
            if not path.is_file():
                raise DatasetUnavailable(f"{path} is missing: DTD needs labels/train1.txt, val1.txt and test1.txt.")
            lines[split] += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    classes = sorted({line.split("/")[0] for line in lines["train"] + lines["test"]})
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for split, entries in lines.items():
        images = np.empty((len(entries), size[1], size[0], 3), dtype=np.uint8)
        for i, entry in enumerate(entries):
            try:
                with Image.open(folder / "images" / entry) as img:
                    images[i] = np.asarray(resize_and_center_crop(img.convert("RGB"), size))
            except OSError as err:
                raise DatasetUnavailable(f"{folder / 'images' / entry} is unreadable: {err}") from err
        out[split] = images, np.array([index[e.split("/")[0]] for e in entries], dtype=np.int64)
    return ImageArrays(*out["train"], *out["test"], classes, description)


def _read_dtd(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    return _read_dtd_folder_at(Path(source.path), f"DTD folder {source.path}")


def _read_dtd_archive(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    with _extracted(Path(source.path), scratch) as tmp:
        folder = _dtd_folder(Path(tmp))
        if folder is None:
            raise DatasetUnavailable(f"{source.path} holds no dtd/images/ and dtd/labels/.")
        return _read_dtd_folder_at(folder, f"DTD archive {source.path}")


def _download_dtd(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    import torchvision.datasets as tvd

    try:
        tvd.DTD(source.path, split="train", download=True)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise DatasetUnavailable(f"Could not download dtd into {source.path}: {err}") from err
    return _read_dtd_folder_at(Path(source.path) / "dtd" / "dtd", f"DTD downloaded into {source.path}")


def _dtd_info() -> DatasetInfo:
    def locate(root: Path) -> DataSource | None:
        folder = _dtd_folder(root)
        if folder is not None:
            return DataSource("dtd", "dtd_folder", str(folder))
        if (root / DTD_ARCHIVE).is_file():
            return DataSource("dtd", "dtd_archive", str(root / DTD_ARCHIVE))
        return None

    def placement(root: Path) -> list[str]:
        return [f"the DTD archive {root / DTD_ARCHIVE}",
                f"its extracted folder {root / 'dtd'}/images/<class>/*.jpg with {root / 'dtd'}/labels/"
                "{train1,val1,test1}.txt (torchvision's download puts it at "
                f"{root / 'dtd' / 'dtd'}/)"]

    return DatasetInfo(
        "dtd", 47, (32, 32, 3), locators=(locate,),
        readers={"dtd_folder": _read_dtd, "dtd_archive": _read_dtd_archive, "download": _download_dtd},
        placement=placement, download_url=DTD_URL)


# ---- MiniImageNet -------------------------------------------------------------------------

MINIIMAGENET_PICKLES = tuple(f"mini-imagenet-cache-{s}.pkl" for s in ("train", "val", "test"))


def _read_miniimagenet_pickles(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    """The common pickle cache: each file a dict with ``image_data`` (n, 84, 84, 3)
    uint8 and ``class_dict`` {wnid: [indices]}; the 64/16/20 classes of the three
    files are joined, sorted by wnid, all 600 images each in the train split."""
    per_class: dict[str, np.ndarray] = {}
    for name in MINIIMAGENET_PICKLES:
        path = Path(source.path) / name
        try:
            with open(path, "rb") as f:
                cache = pickle.load(f, encoding="latin1")
            data, class_dict = np.asarray(cache["image_data"]), cache["class_dict"]
        except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError) as err:
            raise DatasetUnavailable(f"{path} is not a MiniImageNet pickle cache (image_data, class_dict): "
                                     f"{err!r}") from err
        for wnid, indices in class_dict.items():
            per_class[wnid] = data[np.asarray(indices, dtype=np.int64)]
        del cache, data
    classes = sorted(per_class)
    counts = [len(per_class[c]) for c in classes]
    images = np.concatenate([per_class.pop(c) for c in classes]).astype(np.uint8, copy=False)
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), counts)
    return ImageArrays(images, labels, np.empty((0,) + images.shape[1:], np.uint8), np.empty(0, np.int64),
                       classes, f"MiniImageNet pickle cache {source.path}")


def _miniimagenet_info() -> DatasetInfo:
    def locate(root: Path) -> DataSource | None:
        for folder in (root, root / "miniimagenet"):
            if all((folder / f).is_file() for f in MINIIMAGENET_PICKLES):
                return DataSource("miniimagenet", "pickle_cache", str(folder))
        return None

    def placement(root: Path) -> list[str]:
        return [f"the pickle cache {root}/{{{','.join(MINIIMAGENET_PICKLES)}}} (or in {root / 'miniimagenet'}/)",
                f"an image folder {root / 'miniimagenet'}/<wnid>/*.jpg (all 100 classes, 600 images each), "
                "or split by class as .../{train,val,test}/<wnid>/*.jpg",
                f"a .tar.gz of that folder at {root / 'miniimagenet.tar.gz'}"]

    return DatasetInfo(
        "miniimagenet", 100, (84, 84, 3),
        locators=(locate, _tree_locator("miniimagenet", ("miniimagenet",), single_split=True)),
        readers={"pickle_cache": _read_miniimagenet_pickles, **IMAGE_FOLDER_READERS},
        placement=placement, resize_folder_images=True)


# ---- F-CelebA (LEAF) ----------------------------------------------------------------------

FCELEBA_CLASSES = ["not smiling", "smiling"]
_LEAF_JSON_DIRS = (Path("data"), Path("small") / "iid")   # LEAF's output, CAT's copy
_LEAF_IMAGES = Path("data") / "raw" / "img_align_celeba"


def _leaf_json_dir(celeba: Path) -> Path | None:
    """The folder whose ``train/`` and ``test/`` both hold ``*.json`` files."""
    for sub in _LEAF_JSON_DIRS:
        if all((celeba / sub / split).is_dir() and any((celeba / sub / split).glob("*.json"))
               for split in ("train", "test")):
            return celeba / sub
    return None


def _read_leaf(info: DatasetInfo, source: DataSource, scratch: Path, size: tuple[int, int] = (32, 32)
               ) -> ImageArrays:
    """LEAF's CelebA JSON (``users``, ``user_data`` {user: {x: image files, y: 0/1}})
    as CAT reads it: every user of every ``*.json`` of ``train/`` and ``test/``;
    images from ``data/raw/img_align_celeba/`` resized to ``size`` (W, H) (PIL
    bilinear = CAT's ``transforms.Resize((32, 32))``)."""
    from PIL import Image

    celeba = Path(source.path)
    json_dir, image_dir = _leaf_json_dir(celeba), celeba / _LEAF_IMAGES
    records: dict[str, list[tuple[str, str, int]]] = {}
    for split in ("train", "test"):
        records[split] = []
        for path in sorted((json_dir / split).glob("*.json")):
            try:
                data = json.loads(path.read_text())
                for user in data["users"]:
                    xs, ys = data["user_data"][user]["x"], data["user_data"][user]["y"]
                    if len(xs) != len(ys):
                        raise ValueError(f"user {user} has {len(xs)} images and {len(ys)} labels")
                    records[split] += [(user, x, int(y)) for x, y in zip(xs, ys)]
            except (ValueError, KeyError, TypeError) as err:
                raise DatasetUnavailable(f"{path} is not a LEAF JSON file (users, user_data x/y): {err!r}") from err
    users = sorted({user for rs in records.values() for user, _, _ in rs})
    user_index = {u: i for i, u in enumerate(users)}
    out = {}
    for split, rs in records.items():
        images = np.empty((len(rs), size[1], size[0], 3), dtype=np.uint8)
        for i, (_, name, _) in enumerate(rs):
            try:
                with Image.open(image_dir / name) as img:
                    images[i] = np.asarray(img.convert("RGB").resize(size, Image.BILINEAR))
            except OSError as err:
                raise DatasetUnavailable(f"{image_dir / name} is unreadable: {err}") from err
        labels = np.array([y for _, _, y in rs], dtype=np.int64)
        if len(labels) and not set(np.unique(labels)) <= {0, 1}:
            raise DatasetUnavailable(f"{json_dir / split}: F-CelebA labels must be 0/1 (smiling)")
        out[split] = images, labels, np.array([user_index[u] for u, _, _ in rs], dtype=np.int64)
    return ImageArrays(out["train"][0], out["train"][1], out["test"][0], out["test"][1],
                       list(FCELEBA_CLASSES), f"LEAF CelebA at {celeba}",
                       user_names=users, train_users=out["train"][2], test_users=out["test"][2])


def _fceleba_info() -> DatasetInfo:
    def locate(root: Path) -> DataSource | None:
        celeba = root / "celeba"
        if _leaf_json_dir(celeba) is not None and (celeba / _LEAF_IMAGES).is_dir():
            return DataSource("fceleba", "leaf", str(celeba))
        return None

    def placement(root: Path) -> list[str]:
        celeba = root / "celeba"
        return [f"LEAF's CelebA (small/iid) as LEAF writes it: {celeba}/data/train/*.json and "
                f"{celeba}/data/test/*.json (users, user_data {{x: image files, y: smiling 0/1}}; CAT's copy "
                f"{celeba}/small/iid/{{train,test}}/*.json also works) with the images in "
                f"{celeba / _LEAF_IMAGES}/*.jpg"]

    return DatasetInfo("fceleba", 2, (32, 32, 3), locators=(locate,), readers={"leaf": _read_leaf},
                       placement=placement)


# ---- user image folders -------------------------------------------------------------------

def register_image_folder(name: str, path: str | Path, image_shape: tuple[int, int, int] | None = None
                          ) -> DatasetInfo:
    """Make an image folder a dataset called ``name`` (then ``locate_source(name, …)``,
    ``decode`` and the workflow's ``data/<name>/images.h5`` work as for the built-ins).

    ``path``: absolute, or relative to ``data_root``; a folder or a ``.tar.gz``
    (``.tgz``, ``.tar``) of one, holding either ``train/<class>/*`` and
    ``test/<class>/*``, or just ``<class>/*`` (no split: every image in train,
    test empty); an archive's single top folder is entered.  Classes are the
    folder names, sorted; their count is whatever the folders say.
    ``image_shape`` (H, W, C), C ∈ {1, 3}: images are converted to that many
    channels and resized (bilinear) to H×W; None keeps the files' own size and
    channels (grayscale files → C = 1), which then must all agree.

    Registering the same name again with the same arguments is a no-op.  The
    registry lives in the process: a Snakemake job must register the folder
    too (e.g. from the config) before it decodes.

    Raises ValueError for a built-in name, a name already registered with other
    arguments, or a bad ``image_shape``.
    """
    if image_shape is not None:
        image_shape = tuple(int(v) for v in image_shape)
        if len(image_shape) != 3 or image_shape[2] not in (1, 3) or min(image_shape) < 1:
            raise ValueError(f"image_shape of {name!r} must be (height, width, 1 or 3), got {image_shape}")
    if not name or any(c in name for c in "/\\ "):
        raise ValueError(f"dataset name {name!r} must be non-empty without '/', '\\' or spaces")
    existing = DATASETS.get(name)
    if existing is not None:
        if existing.user_path is None:
            raise ValueError(f"{name!r} is a built-in dataset; choose another name for {path}")
        if (existing.user_path, existing.image_shape) != (str(path), image_shape):
            raise ValueError(f"dataset {name!r} is already registered as {existing.user_path} "
                             f"with image_shape {existing.image_shape}")
        return existing

    def locate(root: Path) -> DataSource | None:
        where = root / path   # an absolute path stays as it is
        if where.is_dir():
            return DataSource(name, "image_folder", str(where))
        if where.is_file() and str(where).endswith(ARCHIVE_SUFFIXES):
            return DataSource(name, "image_folder_archive", str(where))
        return None

    def placement(root: Path) -> list[str]:
        return [f"the image folder {root / path} (train/<class>/* and test/<class>/*, or <class>/*), "
                "or a .tar.gz of it at that path"]

    info = DatasetInfo(name, None, image_shape, locators=(locate,), readers=dict(IMAGE_FOLDER_READERS),
                       placement=placement, resize_folder_images=image_shape is not None, user_path=str(path))
    DATASETS[name] = info
    return info


def register_image_folders(folders: Mapping[str, "str | Mapping"]) -> list[DatasetInfo]:
    """:func:`register_image_folder` for each entry of a mapping as a config would
    give it: ``{name: path}`` or ``{name: {"path": path, "image_shape": [H, W, C]}}``.
    Call it wherever the registry is needed (the Snakefile and each job that
    decodes).  Raises ValueError as :func:`register_image_folder`, or for an
    entry without ``path``."""
    infos = []
    for name, entry in folders.items():
        if isinstance(entry, Mapping):
            if "path" not in entry:
                raise ValueError(f"image folder {name!r} needs a 'path'")
            infos.append(register_image_folder(name, entry["path"], entry.get("image_shape")))
        else:
            infos.append(register_image_folder(name, entry))
    return infos


DATASETS.update({
    "cifar10": _cifar_info("cifar10"),
    "cifar100": _cifar_info("cifar100"),
    "mnist": _mnist_info("mnist"),
    "fashion-mnist": _mnist_info("fashion-mnist"),
    "svhn": _svhn_info(),
    "dtd": _dtd_info(),
    "miniimagenet": _miniimagenet_info(),
    "fceleba": _fceleba_info(),
})


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
    :class:`par.io.CorruptFileError` naming the file when it is unreadable."""
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
    :class:`par.io.CorruptFileError` naming the file when it is unreadable."""
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
