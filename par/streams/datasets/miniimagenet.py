"""MiniImageNet: the pickle cache or an image folder."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from par.streams.datasets.sources import DataSource, DatasetInfo, DatasetUnavailable, ImageArrays
from par.streams.datasets.image_folder import IMAGE_FOLDER_READERS, tree_locator


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


def miniimagenet_info() -> DatasetInfo:
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
        locators=(locate, tree_locator("miniimagenet", ("miniimagenet",), single_split=True)),
        readers={"pickle_cache": _read_miniimagenet_pickles, **IMAGE_FOLDER_READERS},
        placement=placement, resize_folder_images=True)
