"""Atomic writes and checked reads."""
import pandas as pd
import pytest

from par.io import CorruptFileError, atomic_path, read_json, read_parquet, write_json, write_parquet


def test_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{partial")
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{")
            raise RuntimeError
    assert read_json(target) == {"a": 1}


def test_corrupt_files_are_named(tmp_path):
    (tmp_path / "x.json").write_text("{trunc")
    with pytest.raises(CorruptFileError, match="x.json"):
        read_json(tmp_path / "x.json")
    (tmp_path / "y.parquet").write_bytes(b"PAR1 nope")
    with pytest.raises(CorruptFileError, match="y.parquet"):
        read_parquet(tmp_path / "y.parquet")


def test_parquet_roundtrip_with_metadata(tmp_path):
    from par.io import parquet_metadata

    write_parquet(tmp_path / "t.parquet", pd.DataFrame({"a": [1, 2]}), metadata={"extractor_weights": "w"})
    assert read_parquet(tmp_path / "t.parquet").a.tolist() == [1, 2]
    assert parquet_metadata(tmp_path / "t.parquet") == {"extractor_weights": "w"}
