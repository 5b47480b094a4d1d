"""MNIST / Fashion-MNIST: torchvision's raw IDX files (plain or ``.gz``)."""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from par.streams.datasets.sources import DataSource, DatasetInfo, DatasetUnavailable, ImageArrays
from par.streams.datasets.image_folder import IMAGE_FOLDER_READERS, tree_locator, tree_placement


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


def mnist_info(name: str) -> DatasetInfo:
    class_name, url = _MNIST_LIKE[name]

    def locate_torchvision(root: Path) -> DataSource | None:
        return DataSource(name, "torchvision", str(root)) if _mnist_raw_complete(root / class_name / "raw") else None

    def placement(root: Path) -> list[str]:
        return [f"torchvision's files {root / class_name / 'raw'}/{{{','.join(MNIST_RAW_FILES)}}} "
                "(each plain or .gz)",
                *(line.format(root=root) for line in tree_placement(name, "png"))]

    return DatasetInfo(
        name, 10, (28, 28, 1),
        locators=(locate_torchvision, tree_locator(name, (f"{name}-png", f"{name}-jpg"))),
        readers={"torchvision": _read_mnist_torchvision, "download": _read_mnist_torchvision,
                 **IMAGE_FOLDER_READERS},
        placement=placement, download_url=url)
