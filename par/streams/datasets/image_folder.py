"""Image-folder trees (``train/<class>/*``, ``test/<class>/*`` or ``<class>/*``), their archives, and user folders."""
from __future__ import annotations

import logging
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from par.streams.datasets.sources import (ARCHIVE_SUFFIXES, DATASETS, IMAGE_EXTENSIONS, DatasetInfo, DatasetUnavailable,
                                   DataSource, ImageArrays, Locator, Reader)

log = logging.getLogger(__name__)


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


def _plain_members(tar: tarfile.TarFile):
    """The files and folders of ``tar``, for Pythons without extraction filters
    (before 3.11.4); raises tarfile.TarError for a name that would land outside the
    target folder, as ``filter="data"`` does.  Links and devices are left out."""
    for member in tar:
        name = Path(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise tarfile.TarError(f"{member.name!r} would be extracted outside the target folder")
        if member.isfile() or member.isdir():
            yield member


def extracted(archive: Path, scratch_dir: Path):
    """Context manager: ``archive`` extracted into a temporary folder of ``scratch_dir``."""
    tmp = tempfile.TemporaryDirectory(dir=scratch_dir, prefix=".extract-")
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp.name, filter="data")
            else:  # Python < 3.11.4 (Debian 12 has 3.11.2): no filters
                tar.extractall(tmp.name, members=_plain_members(tar))
    except (tarfile.TarError, EOFError, OSError) as err:
        tmp.cleanup()
        raise DatasetUnavailable(f"{archive} is not a readable .tar.gz archive: {err}") from err
    return tmp


def _read_image_folder(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    return _read_tree(info, Path(source.path), f"image folder {source.path}")


def _read_image_folder_archive(info: DatasetInfo, source: DataSource, scratch: Path) -> ImageArrays:
    with extracted(Path(source.path), scratch) as tmp:
        return _read_tree(info, Path(tmp), f"image folder archive {source.path}")


IMAGE_FOLDER_READERS: dict[str, Reader] = {
    "image_folder": _read_image_folder,
    "image_folder_archive": _read_image_folder_archive,
}


def tree_locator(name: str, folders: tuple[str, ...], *, single_split: bool = False) -> Locator:
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


def tree_placement(name: str, ext: str = "jpg") -> list[str]:
    return [f"an image-folder tree {{root}}/{name}-{ext}/train/<class>/*.{ext} and .../test/<class>/*.{ext}",
            f"a .tar.gz of such a tree at {{root}}/{name}-{ext}.tar.gz"]

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
