"""Atomic file writes and checked reads.

Every output of the pipeline is written to a temporary file in the destination
directory and renamed into place only when complete, so a killed job never
leaves a partial file that a re-run would trust.  Readers raise
:class:`CorruptFileError` naming the file when a file cannot be parsed.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # imported where used: the workflow imports this module while parsing, which must stay fast
    import h5py
    import pandas as pd
    import pyarrow as pa


class CorruptFileError(RuntimeError):
    """A pipeline file exists but cannot be read (truncated, wrong format)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    The temporary name starts with ``.`` and ends with ``.part`` so it never
    matches an output pattern of the workflow.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; raise :class:`CorruptFileError` if it does not parse."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise CorruptFileError(
            f"{path} is not valid JSON ({err}); it was probably written by an older, "
            "interrupted run. Delete it and re-run the workflow."
        ) from err


@contextlib.contextmanager
def read_hdf5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open an HDF5 file of the pipeline for reading.

    Raises :class:`CorruptFileError` naming ``path`` when the file cannot be
    opened (truncated, not HDF5) or lacks a dataset or attribute that the
    block reads (``KeyError``): a file of another stage or of an older version.
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise CorruptFileError(f"{path} is not a readable HDF5 file ({err}); delete it and re-run.") from err
    try:
        with f:
            yield f
    except KeyError as err:
        raise CorruptFileError(f"{path} lacks {err}; it was not written by this stage of the pipeline. "
                               "Delete it and re-run.") from err


def write_parquet(path: str | os.PathLike, frame: pd.DataFrame,
                  schema: pa.Schema | None = None, metadata: dict[str, str] | None = None) -> None:
    """Write ``frame`` to Parquet atomically.

    ``schema`` (see :mod:`par.infra.schemas`) fixes column order and types; ``metadata``
    is stored as key/value pairs in the file footer (e.g. extractor weights).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): str(v).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Parquet file; raise :class:`CorruptFileError` if it is unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise CorruptFileError(f"{path} is not a readable Parquet file ({err}).") from err


def parquet_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Key/value metadata written by :func:`write_parquet` (pandas' own key dropped)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k != b"pandas"}
