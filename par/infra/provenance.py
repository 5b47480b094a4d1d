"""What code, settings and software produced a file (its provenance).

Two things live here:

- :func:`code_hash`: a content hash of the library code one workflow script
  executes: the script itself and every ``par`` module it imports, followed
  transitively (package ``__init__.py`` files included) and found statically
  by parsing the sources with :mod:`ast`, never by importing them.  The
  workflow passes it to every rule as the param ``code``, so Snakemake's params
  trigger re-runs exactly the jobs whose code changed: a change of
  ``par/results/tables.py`` re-runs the tables, never the features.  The hash is over
  file bytes: a comment-only edit counts as a change.
- :func:`provenance`: the dict stored in every output (Parquet footer key
  ``provenance``, key ``provenance`` of JSON records, HDF5 attribute
  ``provenance``); its keys are documented in :data:`par.infra.schemas.PROVENANCE`.

This module imports neither torch nor Snakemake: the workflow calls it while
parsing, which must stay fast.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from par.infra.io import atomic_path

PACKAGE = "par"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# Distributions whose versions every output records.
VERSIONED = ("torch", "torchvision", "numpy", "snakemake")
# The lock file of the checkout the package is imported from (issue 27): every package of
# the environment pinned with hashes; absent where ``par`` is installed from a wheel.
LOCK_FILE = PACKAGE_ROOT.parent / "requirements.lock"


# ---- the import closure -----------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def module_path(name: str, package_root: Path = PACKAGE_ROOT) -> Path | None:
    """The source file of module ``name`` (``par.x.y``) under ``package_root``
    (the folder of the top package), or None when there is none: ``x/y.py``,
    else the package's ``x/y/__init__.py``."""
    parts = name.split(".")
    if parts[0] != package_root.name:
        return None
    base = package_root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py") if len(parts) > 1 else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate.resolve()
    return None


def _module_name(path: Path, package_root: Path) -> tuple[str, bool]:
    """(dotted name, is a package) of a source file under ``package_root``."""
    relative = path.relative_to(package_root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


@functools.lru_cache(maxsize=None)
def _scan(source: Path, package_root: Path, mtime_ns: int) -> tuple[frozenset[str], frozenset[Path]]:
    """One pass over a file's syntax tree (cached per file version):

    - dotted names of the modules its import statements name (anywhere in the
      file, also inside functions), ``from a import b`` giving both ``a`` and
      ``a.b`` (``b`` may be a submodule), relative imports resolved;
    - package data it names by a string literal relative to the package (e.g.
      ``"data/paper_results.csv"`` read through importlib.resources).
    """
    tree = ast.parse(source.read_bytes(), filename=str(source))
    own, is_package = _module_name(source, package_root) if source.is_relative_to(package_root) else ("", False)
    names, data = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if not own:
                    continue
                anchor = own.split(".") if is_package else own.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and "/" in node.value
              and len(node.value) < 200 and "\n" not in node.value and not node.value.endswith(".py")):
            candidate = package_root / node.value
            if candidate.is_file():
                data.add(candidate.resolve())
    return frozenset(names), frozenset(data)


def imported_modules(source: str | Path, package_root: str | Path = PACKAGE_ROOT) -> list[Path]:
    """Source files of every module of the package at ``package_root`` that
    ``source`` imports, transitively, sorted; each parent package's
    ``__init__.py`` is included (importing ``a.b.c`` runs ``a``, ``a.b``).

    Static: files are parsed with :mod:`ast`, nothing is imported.  Imports
    inside functions and ``if TYPE_CHECKING:`` blocks count.  Modules outside
    the package (torch, numpy, …) are not followed; their versions are
    recorded by :func:`provenance`.  Raises SyntaxError for unparsable files.
    """
    package_root = Path(package_root).resolve()
    seen: set[Path] = set()
    todo = [Path(source).resolve()]
    while todo:
        path = todo.pop()
        for name in _scan(path, package_root, path.stat().st_mtime_ns)[0]:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                found = module_path(".".join(parts[:i]), package_root)
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(found)
    return sorted(seen)


def code_files(script: str | Path, package_root: str | Path = PACKAGE_ROOT,
               extra: Iterable[str | Path] = ()) -> list[Path]:
    """``script``, the package modules it imports (:func:`imported_modules`)
    and the package data files those modules name, in a fixed order.

    ``extra``: further source files the job runs without importing them
    statically, e.g. the module of the method a learn job loads by name
    (:meth:`par.learners.discovery.Catalog.code_sources`); each is added with
    its own static imports, after the script's files."""
    package_root = Path(package_root).resolve()
    files = [Path(script).resolve()]
    for source in (script, *extra):
        source = Path(source).resolve()
        if source not in files:
            files.append(source)
        modules = imported_modules(source, package_root)
        data = set().union(*(_scan(m, package_root, m.stat().st_mtime_ns)[1] for m in modules))
        files += [f for f in (*modules, *sorted(data - set(modules))) if f not in files]
    return files


def code_hash(script: str | Path, package_root: str | Path = PACKAGE_ROOT, extra: Iterable[str | Path] = ()) -> str:
    """``sha256:<hex>`` over the bytes of :func:`code_files` of ``script``
    (and ``extra``), each with its path relative to its root (so moving the
    repository changes nothing).  Any byte changed in one of the files changes
    the hash."""
    package_root = Path(package_root).resolve()
    return _files_hash(code_files(script, package_root, extra), package_root)


def _files_hash(files: list[Path], package_root: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        name = path.relative_to(package_root.parent) if path.is_relative_to(package_root) else Path(path.name)
        data = path.read_bytes()
        digest.update(f"{name.as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return f"sha256:{digest.hexdigest()}"


def _signature(path: Path) -> list:
    stat = path.stat()
    return [str(path), stat.st_mtime_ns, stat.st_size]


_DISK_CACHES: dict[Path, dict] = {}


def cached_code_hash(script: str | Path, package_root: str | Path = PACKAGE_ROOT,
                     cache_file: str | Path | None = None, extra: Iterable[str | Path] = ()) -> str:
    """:func:`code_hash` of ``script``, memoised on disk (every
    snakemake call, each SLURM job included, hashes every rule's code while
    parsing; parsing ~45 files with :mod:`ast` took ~0.15-0.3 s of it).

    An entry holds the hash and the (path, mtime_ns, size) of each file of
    :func:`code_files`; it is used only while every one of those files still
    has that signature, the rule Python uses for its bytecode caches.  A new
    import needs an edit of a file already in the closure, so an entry never
    outlives a change of the closure.  ``cache_file`` defaults to
    ``<package_root>/__pycache__/par-code-hashes.json``; it is written
    atomically, and when it cannot be read or written the hash is computed
    as if there were none.
    """
    script, package_root = Path(script).resolve(), Path(package_root).resolve()
    extra = [Path(e).resolve() for e in extra]
    cache_file = Path(cache_file) if cache_file else package_root / "__pycache__" / "par-code-hashes.json"
    if cache_file not in _DISK_CACHES:
        try:
            _DISK_CACHES[cache_file] = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            _DISK_CACHES[cache_file] = {}
    cache = _DISK_CACHES[cache_file]
    key = "\0".join(map(str, (script, package_root, *extra)))
    entry = cache.get(key)
    if isinstance(entry, dict):
        try:
            if all(_signature(Path(f[0])) == f for f in entry["files"]):
                return entry["hash"]
        except (OSError, KeyError, TypeError, IndexError):
            pass
    files = code_files(script, package_root, extra)
    signatures = [_signature(f) for f in files]
    digest = _files_hash(files, package_root)
    if [_signature(f) for f in files] == signatures:  # no file changed while hashing
        cache[key] = {"hash": digest, "files": signatures}
        try:
            with atomic_path(cache_file) as tmp:
                tmp.write_text(json.dumps(cache))
        except OSError:
            pass
    return digest


# ---- the provenance of one output -------------------------------------------------------

def _build_version(name: str) -> str | None:
    """``__version__`` as written in the package's ``version.py`` (torch's and
    torchvision's carry the build tag, e.g. '2.14.1+cu130', which the installed
    metadata may omit), read without importing the package; None if absent."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "version.py"
    match = re.search(r"^__version__\s*(?::\s*str\s*)?=\s*['\"]([^'\"]+)['\"]", path.read_text(), re.M) \
        if path.is_file() else None
    return match.group(1) if match else None


def versions() -> dict[str, str]:
    """Versions of python and of the :data:`VERSIONED` packages: the build's own
    ``__version__`` where its ``version.py`` states it, else the installed
    metadata ('not installed' if absent).  Imports none of them."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = _build_version(name) or metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def lock_hash(path: str | Path = LOCK_FILE) -> str | None:
    """``sha256:<hex>`` of the bytes of the lock file ``path`` (default
    :data:`LOCK_FILE`, ``requirements.lock`` beside the ``par`` package), or
    None when there is no such file.  Recorded in every output's provenance,
    never a param: a new lock by itself re-runs no job.  The lock is what
    ``./run`` installs the environment from; :func:`versions` records what ran."""
    try:
        return f"sha256:{hashlib.sha256(Path(path).read_bytes()).hexdigest()}"
    except FileNotFoundError:
        return None


def _json_ready(value: Any) -> Any:
    """Params as plain JSON values (Snakemake's Namedlist and tuples become lists)."""
    return json.loads(json.dumps(value, default=lambda o: dict(o) if isinstance(o, Mapping) else list(o)))


def upstream_of(records: Iterable[Mapping]) -> dict[str, list]:
    """Union of the provenance of a job's inputs, each taken with its own
    ``upstream``: distinct code hashes, extractor weights, devices, lock file
    hashes and version sets that went into them, sorted.  ``records``: provenance dicts."""
    code, weights, devices, locks, version_sets = set(), set(), set(), set(), set()
    for record in records:
        for p in (record, record.get("upstream") or {}):
            for target, key in ((code, "code_hash"), (weights, "extractor_weights"), (devices, "device"),
                                (locks, "lock")):
                value = p.get(key)
                values = value if isinstance(value, list) else [value]
                target.update(v for v in values if v is not None)
            version_list = p.get("versions")
            for v in (version_list if isinstance(version_list, list) else [version_list]):
                if v:
                    version_sets.add(json.dumps(v, sort_keys=True))
    return {"code_hash": sorted(code), "extractor_weights": sorted(weights), "device": sorted(devices),
            "lock": sorted(locks), "versions": [json.loads(v) for v in sorted(version_sets)]}


def provenance(params: Mapping, device: str, *, extractor_weights: str | None = None,
               upstream: Iterable[Mapping] = ()) -> dict:
    """The provenance dict of one job's outputs (keys: :data:`par.infra.schemas.PROVENANCE`).

    params: the job's params as Snakemake resolved them (any mapping; its
    ``code`` entry is the :func:`code_hash` the workflow computed, the rest is
    the job's resolved config).  device: where the job computed ('cpu' for
    jobs without tensors).  extractor_weights: weights provenance string of the
    features this job read, 'unused' or None when it reads none.
    upstream: provenance dicts of the job's inputs (:func:`upstream_of`).
    The record's ``lock`` is :func:`lock_hash` of the checkout's lock file.

    Raises KeyError when ``params`` has no ``code`` entry.
    """
    params = dict(params.items())
    code = params.pop("code")
    upstream = list(upstream)
    record = {"code_hash": code, "config": _json_ready(params), "versions": versions(), "lock": lock_hash(),
              "device": device, "extractor_weights": extractor_weights}
    if upstream:
        record["upstream"] = upstream_of(upstream)
    return record


def provenance_json(record: Mapping) -> str:
    """The provenance dict as the one-line JSON stored in Parquet footers and HDF5 attributes."""
    return json.dumps(record, sort_keys=True)


def read_provenance(path: str | Path) -> dict:
    """The provenance stored in a pipeline file (``.parquet``, ``.json``, ``.h5``).

    Raises KeyError naming the file when it carries none (written by an older
    version of the pipeline).
    """
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        stored = (pq.read_schema(path).metadata or {}).get(b"provenance")
        record = json.loads(stored) if stored else None
    elif path.suffix == ".json":
        record = json.loads(path.read_text()).get("provenance")
    elif path.suffix == ".h5":
        import h5py
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("provenance")
        record = json.loads(stored) if stored is not None else None
    else:
        raise ValueError(f"{path}: no provenance is stored in {path.suffix} files")
    if record is None:
        raise KeyError(f"{path} carries no provenance; it was written by an older version of the pipeline")
    return record
