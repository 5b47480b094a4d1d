"""Task streams as data: a declarative spec (YAML) lists the tasks of a benchmark.

A stream spec (schema: ``par/data/streams/stream.schema.yaml``; the paper's
benchmarks are the specs in ``par/data/streams/*.yaml``) gives, per task, the
dataset, the classes, per-class sizes and transforms.  It is read without data
(at workflow parse time) and resolved, per ``seed``, into one JSON-able dict per
task (:func:`resolve_tasks`); a task's resolved dict depends only on its own spec
entry, the seed and its number — appending a task leaves earlier ones unchanged
(except with ``task_order: seeded``, used by the paper's interleaved benchmarks).

:func:`par.streams.prepare.prepare_task` then cuts the task from the dataset's labels
(train / val / test indices per class) — this is the per-task ``task{t}.json`` of the workflow.

Seeds: everything random about task t draws from ``numpy.random.default_rng([seed, t, k])``
with a fixed ``k`` per purpose (dataset choice, sizes, classes, samples), except
class orders of the paper's CIFAR benchmarks (authors' loaders, :mod:`par.streams.class_orders`)
and CTrL's validation pools (split seed 17, independent of the run seed).

A prepared task as the learners see it is a :class:`par.streams.tasks.Task`;
:func:`par.streams.prepare.build_stream` prepares every task of a spec in memory, as the
workflow's ``prepare_stream`` jobs do one by one.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from par.streams.class_orders import CLASS_ORDERS
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
# are read by every snakemake call while parsing
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
