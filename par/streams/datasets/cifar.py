"""CIFAR-10 / CIFAR-100: torchvision's pickles or an image-folder tree; CIFAR-100's superclass table."""
from __future__ import annotations

import csv
import pickle
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np

from par.streams.datasets.sources import DataSource, DatasetInfo, DatasetUnavailable, ImageArrays, Reader
from par.streams.datasets.image_folder import IMAGE_FOLDER_READERS, tree_locator, tree_placement


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


def cifar_info(name: str) -> DatasetInfo:
    _, folder, archive, url = _CIFAR[name]

    def locate_torchvision(root: Path) -> DataSource | None:
        if (root / folder).is_dir() or (root / archive).is_file():
            return DataSource(name, "torchvision", str(root))
        return None

    def placement(root: Path) -> list[str]:
        return [f"torchvision's archive {root / archive} (or its extracted folder {root / folder}/)",
                *(line.format(root=root) for line in tree_placement(name))]

    tree_readers = dict(IMAGE_FOLDER_READERS)
    if name == "cifar100":
        tree_readers = {kind: _adding_coarse_from_table(reader) for kind, reader in tree_readers.items()}
    return DatasetInfo(
        name, {"cifar10": 10, "cifar100": 100}[name], (32, 32, 3),
        # "" = data_root itself may be the tree (as in the CIFAR-only pipeline)
        locators=(locate_torchvision, tree_locator(name, ("", f"{name}-jpg"))),
        readers={"torchvision": _read_cifar_torchvision, "download": _read_cifar_torchvision, **tree_readers},
        placement=placement, download_url=url)
