"""Atomic writes and checked reads."""
import h5py
import numpy as np
import pandas as pd
import pytest

from par.streams.datasets.catalog import load_images
from par.relatedness.extractor import TaskFeatures, load_features, save_features
from par.infra.io import CorruptFileError, atomic_path, read_json, read_parquet, write_json, write_parquet
from par.relatedness.distances import load_prototypes


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
    from par.infra.io import parquet_metadata

    write_parquet(tmp_path / "t.parquet", pd.DataFrame({"a": [1, 2]}), metadata={"extractor_weights": "w"})
    assert read_parquet(tmp_path / "t.parquet").a.tolist() == [1, 2]
    assert parquet_metadata(tmp_path / "t.parquet") == {"extractor_weights": "w"}


def test_unreadable_hdf5_files_are_named(tmp_path):
    good = tmp_path / "task1.h5"
    save_features(good, TaskFeatures(1, np.ones((4, 512), np.float32), np.zeros(4, np.int64),
                                     np.arange(4), [3, 5], "val", "random"))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:1000])     # a copy cut short
    for load in (load_features, load_prototypes, load_images):
        with pytest.raises(CorruptFileError, match="truncated.h5.*delete it and re-run"):
            load(truncated)
    # a readable HDF5 file of the wrong stage: features where images are expected
    with pytest.raises(CorruptFileError, match="task1.h5 lacks"):
        load_images(good)
    with h5py.File(tmp_path / "no_attrs.h5", "w") as f:
        f.create_dataset("features", data=np.zeros((1, 512)))
    with pytest.raises(CorruptFileError, match="no_attrs.h5 lacks"):
        load_features(tmp_path / "no_attrs.h5")
