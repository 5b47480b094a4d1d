"""SVHN: torchvision's ``.mat`` files."""
from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from par.streams.datasets.sources import DataSource, DatasetInfo, DatasetUnavailable, ImageArrays
from par.streams.datasets.image_folder import IMAGE_FOLDER_READERS, tree_locator, tree_placement


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


def svhn_info() -> DatasetInfo:
    def locate_torchvision(root: Path) -> DataSource | None:
        return DataSource("svhn", "torchvision", str(root)) if all((root / f).is_file() for f in SVHN_FILES) \
            else None

    def placement(root: Path) -> list[str]:
        return [f"torchvision's files {root / SVHN_FILES[0]} and {root / SVHN_FILES[1]}",
                *(line.format(root=root) for line in tree_placement("svhn", "png"))]

    return DatasetInfo(
        "svhn", 10, (32, 32, 3),
        locators=(locate_torchvision, tree_locator("svhn", ("svhn-png", "svhn-jpg"))),
        readers={"torchvision": _read_svhn, "download": _read_svhn, **IMAGE_FOLDER_READERS},
        placement=placement, download_url="http://ufldl.stanford.edu/housenumbers/train_32x32.mat")
