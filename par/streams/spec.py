"""Task streams as data: a declarative spec (YAML) lists the tasks of a benchmark.

A stream spec (schema: ``par/data/streams/stream.schema.yaml``; the paper's
benchmarks are the specs in ``par/data/streams/*.yaml``) gives, per task, the
dataset, the classes, per-class sizes and transforms.  It is read without data
(at workflow parse time) and resolved, per ``seed``, into one JSON-able dict per
task (:func:`resolve_tasks`); a task's resolved dict depends only on its own spec
entry, the seed and its number — appending a task leaves earlier ones unchanged
(except with ``task_order: seeded``, used by the paper's interleaved benchmarks).

:func:`prepare_task` then cuts the task from the dataset's labels (train / val /
test indices per class) — this is the per-task ``task{t}.json`` of the workflow.

Seeds: everything random about task t draws from ``numpy.random.default_rng([seed, t, k])``
with a fixed ``k`` per purpose (dataset choice, sizes, classes, samples), except
class orders of the paper's CIFAR benchmarks (authors' loaders, :mod:`par.streams.class_orders`)
and CTrL's validation pools (split seed 17, independent of the run seed).

A prepared task as the learners see it is a :class:`par.streams.tasks.Task`; :func:`build_stream`
prepares every task of a spec in memory, as the workflow's ``prepare_stream`` jobs do
one by one.
"""
from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from par.streams.class_orders import CLASS_ORDERS, cifar100_validation_split
from par.streams.tasks import Stream, task_from_json, task_pixels
from par.streams.transforms import permute_labels, transform_name

SPEC_DIR = Path(__file__).resolve().parents[1] / "data" / "streams"
SCHEMA_PATH = SPEC_DIR / "stream.schema.yaml"

# Purposes of the per-task generators default_rng([seed, task, purpose]).
_DATASET, _SIZES, _CLASSES, _SAMPLES, _LABELS, _ORDER = range(6)

# Normalisation constants by name (docs/spec.md §8): dataset normalisation of the paper's benchmarks.
NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # the authors' loaders (src/dataloaders/cifar10.py); docs/spec.md §8 for CIFAR-100
    "cifar10": (tuple(x / 255 for x in (125.3, 123.0, 113.9)), tuple(x / 255 for x in (63.0, 62.1, 66.7))),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    # torchvision's ImageNet constants (MiniImageNet, docs/spec.md §8)
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class StreamSpecError(ValueError):
    """A stream spec that is not valid; the message names the stream, task and key."""


# libyaml's loader when PyYAML was built with it: several times faster, and specs
# are read by every snakemake call while parsing (issue 8)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return yaml.load(SCHEMA_PATH.read_text(), Loader=_YAML_LOADER)


def shipped_streams() -> dict[str, Path]:
    """Names of the specs shipped in ``par/data/streams`` → their paths."""
    return {p.stem: p for p in sorted(SPEC_DIR.glob("*.yaml")) if p.name != SCHEMA_PATH.name}


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "(top level)"


def validate_spec(spec: dict, name: str) -> None:
    """Check ``spec`` against the stream schema and the rules it cannot express.

    Raises :class:`StreamSpecError` naming ``name`` and the bad key (e.g.
    ``streams.mine: tasks[2].sizes.train: -1 is less than the minimum of 0``)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(spec), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  {_where(e.absolute_path)}: {e.message}" for e in errors[:10]]
        raise StreamSpecError(f"stream '{name}' is not a valid stream spec:\n" + "\n".join(lines))
    for i, entry in enumerate(spec["tasks"]):
        classes = entry.get("classes")
        if isinstance(classes, dict) and "same_as" in classes and "repeat" in entry:
            raise StreamSpecError(f"stream '{name}': tasks[{i}]: 'same_as' cannot be combined with 'repeat'")
        for t in entry.get("transform", []):
            tname, _ = transform_name(t)
            if tname not in ("rainbow", "permute_labels"):
                raise StreamSpecError(f"stream '{name}': tasks[{i}].transform: unknown transform {tname!r}")


@dataclass(frozen=True)
class StreamSpec:
    """A validated stream spec; ``entries`` are the task entries with ``repeat`` expanded
    (each carries ``index``, its position within its repeat group)."""

    name: str
    raw: dict
    entries: tuple

    @property
    def n_tasks(self) -> int:
        return len(self.entries)

    @property
    def image_size(self):
        size = self.raw.get("image_size")
        return None if size is None else ([size, size] if isinstance(size, int) else list(size))

    @property
    def datasets(self) -> set[str]:
        """Every dataset any task may use (a ``choose`` counts all its options)."""
        out = set()
        for e in self.entries:
            d = e["dataset"]
            out.update(d["choose"] if isinstance(d, dict) else [d])
        return out


def load_spec(source, name: str | None = None) -> StreamSpec:
    """A stream spec from a shipped name, a YAML file path or an inline dict; validated.

    Raises :class:`StreamSpecError` (bad spec) or KeyError (unknown shipped name)."""
    if isinstance(source, dict):
        raw, name = copy.deepcopy(source), name or source.get("name", "stream")
    else:
        path = shipped_streams().get(str(source)) or Path(source)
        if not path.is_file():
            raise KeyError(f"no stream spec named {source!r}; shipped: {sorted(shipped_streams())}")
        try:
            raw = yaml.load(path.read_text(), Loader=_YAML_LOADER)
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
            mark = getattr(err, "problem_mark", None)
            at = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise StreamSpecError(f"stream '{name or path.stem}': {path}:{at} does not parse as YAML ({problem})")
        if not isinstance(raw, dict):
            raise StreamSpecError(f"stream '{name or path.stem}': {path}: a stream spec is a mapping, got {type(raw).__name__}")
        name = name or raw.get("name", path.stem)
    validate_spec(raw, name)
    entries = []
    for i, entry in enumerate(raw["tasks"]):
        for k in range(entry.get("repeat", 1)):
            e = {key: v for key, v in entry.items() if key != "repeat"}
            e["index"], e["entry"] = k, i
            entries.append(e)
    return StreamSpec(name, raw, tuple(entries))


def _rng(seed: int, task: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, task, purpose])


def _task_order(spec: StreamSpec, seed: int) -> list[int]:
    if spec.raw.get("task_order", "listed") == "seeded":
        return [int(i) for i in np.random.RandomState(seed).permutation(spec.n_tasks)]
    return list(range(spec.n_tasks))


def _choose(value, rng):
    if isinstance(value, dict) and "choose" in value:
        options = value["choose"]
        return copy.deepcopy(options[int(rng.integers(len(options)))])
    return copy.deepcopy(value)


def _split(spec: StreamSpec, entry: dict) -> dict:
    split = {"kind": "fraction", "val_fraction": 0.1, "split_seed": None, **spec.raw.get("split", {}),
             **entry.get("split", {})}
    if split["kind"] == "pool":
        pools = split.get("val_pool", {})
        split["val_pool"] = pools
    return split


def _normalisation(spec: StreamSpec, entry: dict):
    norm = entry.get("normalisation", spec.raw.get("normalisation", "per_task"))
    if isinstance(norm, str) and norm != "per_task":
        mean, std = NORMALISATIONS[norm]
        return {"mean": list(mean), "std": list(std)}
    return norm


def resolve_tasks(spec: StreamSpec, seed: int) -> list[dict]:
    """One JSON-able dict per task of ``spec`` for ``seed``, in stream order (task 1 first):
    ``task, dataset, classes`` (a list of class ids/names, or a selector resolved
    with data: ``{"draw": k}``, ``{"same_as": j}``), ``sizes {train, val, test}``
    (per class; None = all), ``transform``, ``split``, ``normalisation``
    (``"per_task"`` or ``{mean, std}``), ``image_size``, ``user`` and ``seed``.

    Pure function of (spec entry, seed, task number): no data is read."""
    order = _task_order(spec, seed)
    out = []
    for number, position in enumerate(order, start=1):
        entry = spec.entries[position]
        dataset = _choose(entry["dataset"], _rng(seed, number, _DATASET))
        sizes = {"train": None, "val": None, "test": None, **_choose(entry.get("sizes", {}), _rng(seed, number, _SIZES))}
        classes = entry.get("classes", "all")
        if isinstance(classes, dict) and "order" in classes:
            full = CLASS_ORDERS[classes["order"]](seed)
            k = classes["size"]
            chunk = classes.get("chunk", entry["index"])
            classes = full[chunk * k:(chunk + 1) * k]
            if len(classes) != k:
                raise StreamSpecError(f"stream '{spec.name}': task {number}: class order {entry['classes']['order']} "
                                      f"has no chunk {chunk} of {k} classes")
        out.append({
            "task": number, "dataset": dataset, "classes": copy.deepcopy(classes), "sizes": sizes,
            "transform": copy.deepcopy(entry.get("transform", [])), "split": _split(spec, entry),
            "normalisation": _normalisation(spec, entry), "image_size": spec.image_size,
            "user": entry.get("user"), "seed": seed,
        })
    for t in out:
        ref = t["classes"].get("same_as") if isinstance(t["classes"], dict) else None
        if ref is not None and not 1 <= ref < t["task"]:
            raise StreamSpecError(f"stream '{spec.name}': task {t['task']}: same_as {ref} must name an earlier task")
    return out


def task_dependencies(task: dict) -> list[int]:
    """Earlier tasks whose prepared data this task's preparation reads (``same_as``)."""
    classes = task["classes"]
    return [classes["same_as"]] if isinstance(classes, dict) and "same_as" in classes else []


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
    (:class:`par.streams.datasets.registry.ImageArrays`) or a mapping dataset name → decoded
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
