"""Checks of a configuration's inputs before any job runs (called once at parse
time from ``workflow/rules/common.smk``).

Each check raises :class:`InputError` with one line naming the config key, the
stream, the task or the path; the workflow turns it into a message without a
traceback.  What is checked (issue 16):

- ``results_dir`` exists as something other than a directory;
- a dataset source is an empty folder, an archive that cannot be read to its end
  (truncated ``.tar.gz``), or holds no image;
- a task names a class (name or id) that its dataset does not have;
- a task asks for more images per class (``sizes``) than its dataset holds.

The class lists and per-class counts are read from what is already there: the
decoded ``images.h5`` if it exists (h5py, imported only then), else the image
folder's class folders, or an archive's member names.  Scanning an archive reads
it once (decompressing it); the result is cached on disk keyed by the archive's
(path, size, mtime), so later parses read nothing.  Sources of another kind
(torchvision files, pickles, LEAF) are left to the decode job.
"""
from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class InputError(ValueError):
    """A configuration input that cannot work; the message is one line naming it."""


def check_results_dir(path: str) -> None:
    """``results_dir`` must be a directory or not exist yet."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"results_dir: {path!r} exists and is not a directory; point results_dir at a folder")


# ---- what a source holds: class names and images per class and split -------------------

def _images(names) -> list[str]:
    return [n for n in names if n.lower().endswith(IMAGE_SUFFIXES) and not PurePosixPath(n).name.startswith(".")]


def _index_paths(paths: list[PurePosixPath]) -> dict:
    """{"classes": [...], "counts": {split: {class: n}}} from relative image paths
    ``[top/]{train,test}/<class>/<file>`` or ``[top/]<class>/<file>``."""
    parts = [p.parts for p in paths]
    # enter single top folders (an archive's top folder) while no split folder shows
    while parts and all(len(q) > 2 for q in parts) and len({q[0] for q in parts}) == 1 \
            and not {q[0] for q in parts} & {"train", "test"}:
        parts = [q[1:] for q in parts]
    counts: dict[str, dict[str, int]] = {}
    if parts and {q[0] for q in parts if len(q) == 3} >= {"train"} and all(len(q) == 3 for q in parts):
        for split, cls, _ in parts:
            counts.setdefault(split, {}).setdefault(cls, 0)
            counts[split][cls] += 1
    else:
        for q in parts:
            if len(q) == 2:
                counts.setdefault("train", {}).setdefault(q[0], 0)
                counts["train"][q[0]] += 1
    return {"classes": sorted(counts.get("train", {})), "counts": counts}


def _scan_archive(path: Path) -> dict:
    try:
        with tarfile.open(path) as tar:
            names = [m.name for m in tar if m.isfile()]
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable .tar.gz archive ({type(err).__name__}: {err or 'truncated'})")
    return _index_paths([PurePosixPath(n) for n in _images(names)])


def _scan_folder(path: Path) -> dict:
    files = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    return _index_paths([PurePosixPath(n) for n in _images(files)])


def _scan_h5(path: Path) -> dict:
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        names = json.loads(f.attrs["class_names"])
        counts = {}
        for split in ("train", "test"):
            if f"{split}/labels" in f:
                labels = f[f"{split}/labels"][...]
                values, n = np.unique(labels, return_counts=True)
                counts[split] = {names[int(v)]: int(k) for v, k in zip(values, n)}
    return {"classes": names, "counts": counts, "ordered": True}


def source_index(kind: str, path: str | Path, cache_file: str | Path | None = None) -> dict | None:
    """Class names and images per class of one source (None: a kind not scanned).

    ``kind``: ``images.h5``, ``image_folder`` or ``image_folder_archive``.
    Raises :class:`InputError` for an unreadable archive or a source without images."""
    path = Path(path)
    if kind == "images.h5":
        return _scan_h5(path)
    if kind not in ("image_folder", "image_folder_archive"):
        return None
    key = None
    cache = {}
    if kind == "image_folder_archive" and cache_file is not None:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        try:
            cache = json.loads(Path(cache_file).read_text())
        except (OSError, ValueError):
            cache = {}
        if key in cache:
            return cache[key]
    index = _scan_archive(path) if kind == "image_folder_archive" else _scan_folder(path)
    if not index["classes"]:
        what = "archive" if kind == "image_folder_archive" else "folder"
        raise InputError(f"{path}: the {what} holds no images in class folders "
                         "(expected train/<class>/* and test/<class>/*, or <class>/*)")
    if key is not None:
        cache[key] = index
        try:
            Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(f"{cache_file}.{os.getpid()}.part")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_file)
        except OSError:
            pass
    return index


# ---- a stream's tasks against their datasets ----------------------------------------------

def check_task(stream: str, task: dict, index: dict, *, n_classes: int | None = None) -> None:
    """One resolved task (:func:`par.streams.spec.resolve_tasks`) against its dataset's
    ``index`` (:func:`source_index`): every class it names exists, and each class
    holds at least ``sizes`` images (train + val from the train split, test from
    the test split, or from train when the dataset has no test split)."""
    where = f"streams.{stream}: task {task['task']} ({task['dataset']})"
    names = index["classes"]
    n = n_classes if n_classes is not None else len(names)
    classes = task["classes"]
    chosen: list[str] | None = None
    if isinstance(classes, list):
        chosen = []
        for c in classes:
            if isinstance(c, str):
                if c not in names:
                    shown = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
                    raise InputError(f"{where}: classes: no class named {c!r}; the dataset has {shown}")
                chosen.append(c)
            elif not 0 <= int(c) < n:
                raise InputError(f"{where}: classes: class id {c} is outside 0..{n - 1}")
            elif index.get("ordered") or len(names) == n:
                chosen.append(names[int(c)])
    elif classes == "all":
        chosen = list(names)
    elif isinstance(classes, dict) and "draw" in classes and classes["draw"] > n:
        raise InputError(f"{where}: classes: cannot draw {classes['draw']} classes from the {n} of the dataset")
    if not chosen:
        return
    sizes = task.get("sizes") or {}
    counts = index["counts"]
    has_test = bool(counts.get("test"))
    want_train = sum(v for v in (sizes.get("train"), sizes.get("val")) if isinstance(v, int))
    if not has_test and isinstance(sizes.get("test"), int):
        want_train += sizes["test"]
    for cls in chosen:
        have = counts.get("train", {}).get(cls, 0)
        if want_train and want_train > have:
            raise InputError(f"{where}: sizes: class {cls!r} has {have} training images, the task asks for "
                             f"{want_train} (train {sizes.get('train')} + val {sizes.get('val')}"
                             + ("" if has_test else f" + test {sizes.get('test')}") + "); lower sizes, or set them "
                             "to null to take every image")
        test = sizes.get("test")
        if has_test and isinstance(test, int) and test > counts["test"].get(cls, 0):
            raise InputError(f"{where}: sizes: class {cls!r} has {counts['test'].get(cls, 0)} test images, the "
                             f"task asks for {test}; lower sizes.test, or set it to null to take every image")


def _needs_index(task: dict) -> bool:
    classes, sizes = task["classes"], task.get("sizes") or {}
    return (isinstance(classes, list) and any(isinstance(c, str) for c in classes)) or \
        any(isinstance(v, int) for v in sizes.values())


def check_streams(tasks: dict[str, list[dict]], data_root: str, user_datasets, cache_file: str | Path) -> None:
    """Every task of every configured stream (``{stream: resolved tasks}``) against
    its dataset, before any job: user datasets (``user_datasets``: names of the
    config key ``datasets``) must be readable and hold images; class names, ids
    and sizes must fit the dataset.  Sources that cannot be located are left to
    :func:`workflow check_inputs_available` (it names what to place where)."""
    from par.streams.datasets.catalog import DATASETS, DatasetUnavailable, locate_source

    indexes: dict[str, dict | None] = {}

    def index_of(dataset: str) -> dict | None:
        if dataset not in indexes:
            try:
                source = locate_source(dataset, data_root, probe_network=False)
            except (DatasetUnavailable, KeyError):
                indexes[dataset] = None
            else:
                try:
                    indexes[dataset] = source_index(source.kind, source.path, cache_file)
                except InputError as err:
                    key = f"datasets.{dataset}" if dataset in user_datasets else f"dataset {dataset}"
                    raise InputError(f"{key}: {err}") from None
        return indexes[dataset]

    for name in sorted(user_datasets):
        index_of(name)
    for stream, stream_tasks in tasks.items():
        for task in stream_tasks:
            dataset = task["dataset"]
            info = DATASETS.get(dataset)
            n_classes = info.n_classes if info is not None else None
            if isinstance(task["classes"], list) and n_classes is not None:
                for c in task["classes"]:
                    if not isinstance(c, str) and not 0 <= int(c) < n_classes:
                        raise InputError(f"streams.{stream}: task {task['task']} ({dataset}): classes: class id {c} "
                                         f"is outside 0..{n_classes - 1}")
            if dataset in user_datasets or _needs_index(task):
                index = index_of(dataset)
                if index is not None:
                    check_task(stream, task, index, n_classes=n_classes)
