"""Bad input stops before any job with one line naming stream, task, key or path:
each case is a dry-run of the real workflow that must fail while parsing, with no Python
traceback of the library and no job scheduled."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from test_workflow import TINY, snakemake

MNIST_ARCHIVE = SHARED_DATA / "mnist-t10k-png.tar.gz"


def config(tmp_path: Path, data_root: Path, **changes) -> dict:
    c = copy.deepcopy(TINY)
    c.update(data_root=str(data_root), runs={"finetune": {"method": "finetune"}}, **changes)
    return c


def fails_naming(tmp_path, c, *needles):
    result = snakemake(tmp_path / "work", c, "all_tables", "--dry-run")
    text = result.stdout + result.stderr
    assert result.returncode != 0, text[-2000:]
    assert "Traceback" not in text and "rule decode_dataset" not in text, text[-2000:]
    for needle in needles:
        assert needle in text, (needle, text[-2000:])


def user_stream(dataset: str, **task) -> dict:
    return {"benchmarks": ["mine"], "streams": {"mine": {"tasks": [{"dataset": dataset, **task}]}}}


def test_class_name_the_dataset_lacks(tmp_path, cifar10_slice):
    c = config(tmp_path, cifar10_slice, **user_stream("cifar10", classes=["airplane", "unicorn"]))
    fails_naming(tmp_path, c, "streams.mine: task 1 (cifar10): classes: no class named 'unicorn'", "airplane, automobile")


def test_class_id_outside_the_dataset(tmp_path, cifar10_slice):
    c = config(tmp_path, cifar10_slice, **user_stream("cifar10", classes=[0, 10]))
    fails_naming(tmp_path, c, "streams.mine: task 1 (cifar10): classes: class id 10 is outside 0..9")


def test_empty_user_dataset_folder(tmp_path, cifar10_slice):
    (tmp_path / "empty").mkdir()
    c = config(tmp_path, cifar10_slice, datasets={"mine-data": {"path": str(tmp_path / "empty")}},
               **user_stream("mine-data", classes=[0, 1]))
    fails_naming(tmp_path, c, f"datasets.mine-data: {tmp_path / 'empty'}: the folder holds no images")


def test_truncated_archive(tmp_path, cifar10_slice):
    truncated = tmp_path / "digits.tar.gz"
    truncated.write_bytes(MNIST_ARCHIVE.read_bytes()[:300_000])
    c = config(tmp_path, cifar10_slice, datasets={"digits": {"path": str(truncated)}},
               **user_stream("digits", classes=[0, 1]))
    fails_naming(tmp_path, c, f"datasets.digits: {truncated}: not a readable .tar.gz archive (EOFError")


def test_results_dir_is_a_file(tmp_path, cifar10_slice):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "afile").write_text("")
    c = config(tmp_path, cifar10_slice, results_dir="afile")
    fails_naming(tmp_path, c, "results_dir: 'afile' exists and is not a directory")


def test_stream_spec_file_that_does_not_parse(tmp_path, cifar10_slice):
    spec = tmp_path / "mine.yaml"
    spec.write_text("tasks:\n  - {dataset: cifar10, classes: [0, 1]\n  - x: [\n")
    c = config(tmp_path, cifar10_slice, benchmarks=["mine"], streams={"mine": str(spec)})
    fails_naming(tmp_path, c, f"stream 'streams.mine': {spec}: line 3, column 3: does not parse as YAML")


def test_sizes_larger_than_the_data(tmp_path, cifar10_slice):
    # the slice has 40 training images per class
    c = config(tmp_path, cifar10_slice, **user_stream("cifar10", classes=["cat", "dog"],
                                                      sizes={"train": 100000, "val": 5, "test": 10}))
    fails_naming(tmp_path, c, "streams.mine: task 1 (cifar10): sizes: class 'cat' has 40 training images, "
                              "the task asks for 100005")


def test_sizes_within_the_data_pass(tmp_path, cifar10_slice):
    c = config(tmp_path, cifar10_slice, **user_stream("cifar10", classes=["cat", "dog"],
                                                      sizes={"train": 30, "val": 10, "test": 20}))
    result = snakemake(tmp_path / "work", c, "all_tables", "--dry-run")
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
