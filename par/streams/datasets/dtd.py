"""DTD (Describable Textures): the extracted archive or ``dtd-r1.0.1.tar.gz``, resized as CTrL does."""
from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from par.streams.datasets.sources import DataSource, DatasetInfo, DatasetUnavailable, ImageArrays
from par.streams.datasets.image_folder import extracted


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
    with extracted(Path(source.path), scratch) as tmp:
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


def dtd_info() -> DatasetInfo:
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
