"""Preparing tasks: cutting each task of a resolved stream spec from its dataset's
labels (:func:`prepare_task`: the class choice, the train / validation / test split
kinds, the label map), its normalisation (:func:`task_normalisation`), and whole
streams in memory (:func:`build_stream`), as the workflow's ``prepare_stream`` jobs
prepare them one by one.  The spec itself is read and resolved by :mod:`par.streams.spec`.

Seeds: as :mod:`par.streams.spec` (``numpy.random.default_rng([seed, t, k])`` with a
fixed ``k`` per purpose).
"""
from __future__ import annotations

import json

import numpy as np

from par.streams.class_orders import cifar100_validation_split
# The per-task generators and their purposes are the spec's (one seeding scheme).
from par.streams.spec import _CLASSES, _LABELS, _SAMPLES, _rng, load_spec, resolve_tasks
from par.streams.tasks import Stream, task_from_json, task_pixels
from par.streams.transforms import permute_labels, transform_name


# ---- cutting a task from the dataset's labels --------------------------------------------

def _val_pools(labels: np.ndarray, pool_size: int, split_seed: int) -> dict[int, np.ndarray]:
    # CTrL: a fixed validation pool per class carved from the train split with its own seed.
    rs = np.random.RandomState(split_seed)
    out = {}
    for c in sorted(set(int(x) for x in np.unique(labels))):
        idx = np.flatnonzero(labels == c)
        out[c] = np.sort(idx[rs.permutation(len(idx))[:pool_size]])
    return out


def _take(idx: np.ndarray, n, what: str, c: int, task: int):
    if n is None:
        return idx
    if len(idx) == 0:
        raise ValueError(f"task {task}: class {c} has no {what} images")
    return idx[:n]


def prepare_task(task: dict, train_labels: np.ndarray, test_labels: np.ndarray, class_names: list[str], *,
                 train_users: np.ndarray | None = None, test_users: np.ndarray | None = None,
                 earlier: dict[int, dict] | None = None, caps: dict | None = None) -> dict:
    """Cut task ``task`` (a dict of :func:`resolve_tasks`) from its dataset's labels.

    Per class c of the task (dataset class ids, local label = position):

    - ``split.kind = fraction`` (CIFAR, docs/spec.md §8): c's train images, shuffled with the
      task's generator, give round(val_fraction · n) validation images and the rest
      training images; ``sizes`` then cap each.
    - ``split.kind = pool`` (CTrL): a validation pool of ``val_pool[dataset]`` images
      per class is carved from the train split with ``split_seed`` (17) regardless of
      the run seed; the task draws ``sizes.train`` from the rest and ``sizes.val`` from
      the pool (fewer when a pool is smaller, as CTrL's S_long on CIFAR-100).
    - ``split.kind = cifar100-authors``: the authors' CIFAR-100 validation draw
      (:func:`par.streams.class_orders.cifar100_validation_split`, docs/spec.md §8).
    - ``split.kind = count``: exactly ``sizes.val`` validation images from the shuffled
      train images, then up to ``sizes.train`` training images.

    Test images: up to ``sizes.test`` of c's test split; a dataset without a test
    split (a single-split image folder) gives its first ``sizes.test`` shuffled train
    images to test before anything else.  ``caps`` (config key ``stream``:
    ``max_train_per_class``, ``max_test_per_class``) cut the train pool and the test
    images further, for CPU demos.

    ``train_users``/``test_users`` (n,) select the images of ``task["user"]``
    (``{"index": k}``: the k-th user id in string order; F-CelebA).  ``earlier``
    maps task numbers to their prepared dicts, for ``same_as``.

    Returns a JSON-able dict: the resolved fields plus ``classes``, ``class_names``,
    ``label_map`` (local label of each class position after label transforms),
    ``train``, ``val``, ``test`` (sorted int indices into the dataset's train / train /
    test split) and ``n_train``, ``n_val``, ``n_test``.

    Raises ValueError naming the task and class when a class has no images or a
    split would be empty."""
    caps = {"max_train_per_class": None, "max_test_per_class": None, "val_fraction": None, **(caps or {})}
    number, sizes, split = task["task"], task["sizes"], task["split"]
    classes = _resolve_classes(task, class_names, earlier or {})
    train_mask = np.ones(len(train_labels), bool)
    test_mask = np.ones(len(test_labels), bool)
    user = task.get("user")
    if user is not None:
        if train_users is None:
            raise ValueError(f"task {number} selects a user but dataset {task['dataset']} has no user ids")
        users = sorted(set(map(str, train_users)))
        uid = users[user["index"]]
        train_mask &= np.asarray(train_users).astype(str) == uid
        if test_users is not None and len(test_users):
            test_mask &= np.asarray(test_users).astype(str) == uid
    rng = _rng(task["seed"], number, _SAMPLES)
    val_fraction = caps["val_fraction"] if caps["val_fraction"] is not None else split.get("val_fraction", 0.1)
    if split["kind"] not in SPLIT_KINDS:
        raise ValueError(f"task {number}: unknown split kind {split['kind']!r}; one of {sorted(SPLIT_KINDS)}")
    carve = SPLIT_KINDS[split["kind"]](task, train_labels, caps, val_fraction)
    train, val, test = [], [], []
    test_source = "train" if len(test_labels) == 0 else "test"
    for c in classes:
        pool = np.flatnonzero((train_labels == c) & train_mask)
        tidx = rng.permutation(np.flatnonzero((test_labels == c) & test_mask))
        pool = rng.permutation(pool)
        if len(test_labels) == 0:  # single-split dataset: carve test images from train first
            if sizes["test"] is None:
                raise ValueError(f"task {number}: dataset {task['dataset']} has no test images of class {c}; "
                                 "give sizes.test so that test images are carved from its train images")
            tidx, pool = pool[:sizes["test"]], pool[sizes["test"]:]
        if caps["max_test_per_class"] is not None:
            tidx = tidx[:caps["max_test_per_class"]]
        tidx = _take(tidx, sizes["test"], "test", c, number)
        vidx, pool = carve(c, pool)
        tridx = pool if sizes["train"] is None else pool[:sizes["train"]]
        if len(tridx) == 0 or len(vidx) == 0 or len(tidx) == 0:
            raise ValueError(
                f"task {number} ({task['dataset']}): class {c} ({class_names[c]}) gets {len(tridx)} train, "
                f"{len(vidx)} val and {len(tidx)} test images; each split needs at least one")
        train.append(tridx), val.append(vidx), test.append(tidx)
    label_map = list(range(len(classes)))
    for entry in task["transform"]:
        name, _ = transform_name(entry)
        if name == "permute_labels":
            label_map = [label_map[p] for p in permute_labels(len(classes), [task["seed"], number, _LABELS])]
    return {
        **task, "classes": classes, "class_names": [class_names[c] for c in classes], "label_map": label_map,
        "n_train": int(sum(map(len, train))), "n_val": int(sum(map(len, val))), "n_test": int(sum(map(len, test))),
        "train": np.sort(np.concatenate(train)).tolist(), "val": np.sort(np.concatenate(val)).tolist(),
        "test": np.sort(np.concatenate(test)).tolist(), "test_source": test_source,
    }


# ---- the split kinds: per class c, (validation indices, remaining train pool) ----------------
# Each takes (task, train_labels, caps, val_fraction) and returns carve(c, pool), pool being
# c's train images (after the user filter), shuffled by the task's generator.

def _cap(pool: np.ndarray, caps: dict) -> np.ndarray:
    return pool if caps["max_train_per_class"] is None else pool[:caps["max_train_per_class"]]


def _cap_val(vidx: np.ndarray, sizes: dict) -> np.ndarray:
    return vidx if sizes["val"] is None else vidx[:sizes["val"]]


def _fraction_split(task: dict, train_labels: np.ndarray, caps: dict, val_fraction: float):
    """``fraction`` (CIFAR, docs/spec.md §8): the first round(val_fraction · n) of the
    (capped) pool are validation images, at most ``sizes.val``."""
    def carve(c, pool):
        pool = _cap(pool, caps)
        n_val = int(round(val_fraction * len(pool)))
        return _cap_val(pool[:n_val], task["sizes"]), pool[n_val:]
    return carve


def _count_split(task: dict, train_labels: np.ndarray, caps: dict, val_fraction: float):
    """``count``: exactly ``sizes.val`` validation images from the (capped) pool."""
    def carve(c, pool):
        pool = _cap(pool, caps)
        n_val = task["sizes"]["val"]
        return pool[:n_val], pool[n_val:]
    return carve


def _pool_split(task: dict, train_labels: np.ndarray, caps: dict, val_fraction: float):
    """``pool`` (CTrL): a fixed validation pool of ``val_pool[dataset]`` images per class,
    carved with ``split_seed`` (17) whatever the run seed; validation images are the
    pool's members in the shuffled pool (at most ``sizes.val``), train the rest (capped)."""
    split = task["split"]
    pool_size = split["val_pool"].get(task["dataset"], split.get("default_val_pool", 0))
    pools = _val_pools(train_labels, pool_size, split["split_seed"] if split["split_seed"] is not None else 17)

    def carve(c, pool):
        in_pool = np.isin(pool, pools[c])
        return _cap_val(pool[in_pool], task["sizes"]), _cap(pool[~in_pool], caps)
    return carve


def _authors_split(task: dict, train_labels: np.ndarray, caps: dict, val_fraction: float):
    """``cifar100-authors``: the authors' CIFAR-100 draw over the whole train split
    (:func:`par.streams.class_orders.cifar100_validation_split`; seed only, not the task)."""
    authors = cifar100_validation_split(train_labels, task["seed"], val_fraction, caps["max_train_per_class"])

    def carve(c, pool):
        vidx, rest = authors[c]
        return _cap_val(vidx, task["sizes"]), rest
    return carve


SPLIT_KINDS = {"fraction": _fraction_split, "count": _count_split, "pool": _pool_split,
               "cifar100-authors": _authors_split}


def _resolve_classes(task: dict, class_names: list[str], earlier: dict[int, dict]) -> list[int]:
    classes, number = task["classes"], task["task"]
    n = len(class_names)
    if classes == "all":
        return list(range(n))
    if isinstance(classes, list):
        out = []
        for c in classes:
            if isinstance(c, str):
                if c not in class_names:
                    raise ValueError(f"task {number}: dataset {task['dataset']} has no class named {c!r}")
                out.append(class_names.index(c))
            elif not 0 <= c < n:
                raise ValueError(f"task {number}: class id {c} is outside 0..{n - 1} of {task['dataset']}")
            else:
                out.append(int(c))
        return out
    if "draw" in classes:
        k = classes["draw"]
        if k > n:
            raise ValueError(f"task {number}: cannot draw {k} classes from the {n} of {task['dataset']}")
        return [int(c) for c in _rng(task["seed"], number, _CLASSES).choice(n, size=k, replace=False)]
    if "same_as" in classes:
        ref = earlier.get(classes["same_as"])
        if ref is None:
            raise ValueError(f"task {number}: same_as task {classes['same_as']} was not prepared")
        if ref["dataset"] != task["dataset"]:
            raise ValueError(f"task {number}: same_as task {classes['same_as']} uses {ref['dataset']}, "
                             f"not {task['dataset']}")
        return list(ref["classes"])
    raise ValueError(f"task {number}: unknown class selector {classes!r}")


def write_task(path, prepared: dict) -> None:
    """Write a prepared task atomically as JSON."""
    from par.infra.io import write_json

    write_json(path, prepared)


def describe(prepared: dict) -> str:
    """One log line for a prepared task."""
    return (f"task {prepared['task']}: {prepared['dataset']} classes {prepared['class_names']} "
            f"train {prepared['n_train']} val {prepared['n_val']} test {prepared['n_test']} "
            f"transform {json.dumps(prepared['transform'])}")


def task_normalisation(prepared: dict, images) -> tuple[list[float], list[float]]:
    """(mean, std) (3,) of a prepared task: the spec's constants, or with
    ``per_task`` the per-channel statistics of its training images after its
    transforms (CTrL streams), read from ``images`` (the path of its ``images.h5``,
    or anything :func:`par.streams.tasks.task_pixels` takes)."""
    from par.streams.transforms import channel_statistics

    norm = prepared["normalisation"]
    if norm != "per_task":
        return list(norm["mean"]), list(norm["std"])
    pixels, _ = task_pixels(images, task_from_json({**prepared, "mean": [0, 0, 0], "std": [1, 1, 1]}), "train")
    mean, std = channel_statistics(pixels)
    return list(mean), list(std)


def task_users(images_path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-image user ids (train (n,), test (m,) str) of a dataset with users (F-CelebA):
    ``user_names[train/users]`` of its ``images.h5`` (par.streams.datasets stores indices
    into the string-ordered ``user_names``); None where absent."""
    from par.infra.io import read_hdf5

    with read_hdf5(images_path) as f:
        if "user_names" not in f.attrs:
            return None, None
        names = np.asarray(json.loads(f.attrs["user_names"]), dtype=str)
        return tuple(names[f[f"{s}/users"][...]] if f"{s}/users" in f else None for s in ("train", "test"))


def build_stream(source, images, seed: int, *, caps: dict | None = None) -> Stream:
    """Every task of a stream spec, prepared in memory as the workflow's
    ``prepare_stream`` jobs prepare them one by one (:func:`resolve_tasks`,
    :func:`prepare_task`, :func:`task_normalisation`).

    ``source``: as :func:`load_spec`.  ``images``: a decoded dataset
    (:class:`par.streams.datasets.ImageArrays`) or a mapping dataset name → decoded
    dataset.  ``caps``: the config section ``stream`` (``max_train_per_class``,
    ``max_test_per_class``, ``val_fraction``).  Raises as those functions."""
    spec = load_spec(source)
    earlier: dict[int, dict] = {}
    for task in resolve_tasks(spec, seed):
        arrays = images[task["dataset"]] if isinstance(images, dict) else images
        prepared = prepare_task(task, arrays.train_labels, arrays.test_labels, arrays.class_names,
                                train_users=_users(arrays, "train"), test_users=_users(arrays, "test"),
                                earlier=earlier, caps=caps)
        prepared["mean"], prepared["std"] = task_normalisation(prepared, arrays)
        earlier[task["task"]] = prepared
    return Stream.from_tasks(spec.name, seed, [task_from_json(d) for d in earlier.values()])


def _users(arrays, split: str):
    users = getattr(arrays, f"{split}_users", None)
    return None if users is None else np.asarray(arrays.user_names, dtype=str)[users]
