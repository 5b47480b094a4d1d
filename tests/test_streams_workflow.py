"""A user's own mixed stream through the real workflow, on tiny real-data slices.

The stream is config/demo-mixed.yaml's (CIFAR-10 pairs and MNIST digit pairs,
MNIST from the single-split archive mnist-t10k-png.tar.gz as a user dataset),
cut to a few images per class.  One run of its first two tasks, then a copy with
a third task appended: only the new task's jobs, the distances, the plan,
metrics and tables run again.
"""
from __future__ import annotations

import copy
import json
import shutil
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import SHARED_DATA
from test_workflow import config_for, scheduled_jobs, snakemake

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow
MNIST_ARCHIVE = SHARED_DATA / "mnist-t10k-png.tar.gz"
SIZES = {"train": 16, "val": 4, "test": 10}


@pytest.fixture(scope="module")
def mnist_slice(tmp_path_factory) -> Path:
    """The first 30 digits of each class of the real MNIST test archive, as the
    single-split tree ``<root>/mnist-t10k/<digit>/*.png``."""
    if not MNIST_ARCHIVE.is_file():
        pytest.fail(f"the real MNIST copy is missing: {MNIST_ARCHIVE} (set PAR_SHARED_DATA)")
    root = tmp_path_factory.mktemp("mnist_slice")
    taken = {}
    with tarfile.open(MNIST_ARCHIVE) as tar:
        for member in tar:
            parts = Path(member.name).parts  # mnist-t10k/<digit>/<file>
            if member.isfile() and len(parts) == 3 and taken.get(parts[1], 0) < 30:
                target = root / Path(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                taken[parts[1]] = taken.get(parts[1], 0) + 1
    return root


def mixed_config(cifar10_slice: Path, mnist_slice: Path, n_tasks: int) -> dict:
    demo = yaml.safe_load((REPO / "config/demo-mixed.yaml").read_text())
    stream = copy.deepcopy(demo["streams"]["cifar10-mnist-pairs"])
    stream["tasks"] = [{**t, "sizes": SIZES} for t in stream["tasks"][:n_tasks]]
    config = config_for(cifar10_slice)
    config.update(benchmarks=["cifar10-mnist-pairs"], streams={"cifar10-mnist-pairs": stream},
                  datasets={"mnist-t10k": {"path": str(mnist_slice)}},
                  runs={"par": {"method": "par"}, "finetune": {"method": "finetune"}})
    config.pop("stream")
    return config


@pytest.fixture(scope="module")
def two_tasks(cifar10_slice, mnist_slice, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mixed")
    result = snakemake(workdir, mixed_config(cifar10_slice, mnist_slice, 2), "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, result.stdout + result.stderr


def test_mixed_stream_of_cifar10_and_mnist_pairs_runs_end_to_end(two_tasks):
    workdir, output = two_tasks
    res = workdir / "results"
    ran = scheduled_jobs(output)
    assert {("decode_dataset", None, None), ("learn_task", "par", 2), ("learn_task", "finetune", 2)} <= ran
    assert (res / "data/mnist-t10k/images.h5").exists() and (res / "data/cifar10/images.h5").exists()
    bench = res / "data/cifar10-mnist-pairs/seed0"
    t1, t2 = (json.loads((bench / f"task{t}.json").read_text()) for t in (1, 2))
    assert (t1["dataset"], t1["class_names"]) == ("cifar10", ["airplane", "automobile"])
    assert (t2["dataset"], t2["class_names"]) == ("mnist-t10k", ["0", "1"])
    # MNIST's single split cut by the spec: test images carved from it, disjoint from train and val
    assert t2["test_source"] == "train" and (t2["n_train"], t2["n_val"], t2["n_test"]) == (32, 8, 20)
    assert not set(t2["test"]) & (set(t2["train"]) | set(t2["val"]))
    assert t1["mean"] != t2["mean"]  # per-task normalisation
    plan = json.loads((res / "runs/cifar10-mnist-pairs/seed0/par/plan.json").read_text())
    assert [t["task"] for t in plan["tasks"]] == [1, 2]
    summary = pd.read_parquet(res / "tables/summary.parquet")
    assert sorted(summary.run) == ["finetune", "par"] and summary.AP.between(0, 1).all()
    # each task's feature job read only its own dataset
    log = (res / "logs/extract_features/cifar10-mnist-pairs/seed0/task2.log").read_text()
    assert "task 2" in log


def test_appending_a_task_reruns_only_that_task_and_the_plan(two_tasks, cifar10_slice, mnist_slice, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(two_tasks[0], workdir, symlinks=True)
    result = snakemake(workdir, mixed_config(cifar10_slice, mnist_slice, 3), "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    ran = scheduled_jobs(result.stdout + result.stderr)
    # alpha = beta = 1 (TINY): task 3 joins group 1 by regularization, no search
    assert ran == {
        ("prepare_stream", None, 3), ("extract_features", None, 3), ("prototypes", None, 3),
        ("distances", None, None), ("plan", "par", None),
        ("learn_task", "par", 3), ("learn_task", "finetune", 3),
        ("metrics", "par", None), ("metrics", "finetune", None), ("tables", None, None), ("all_tables", None, None),
    }


def test_each_missing_dataset_of_a_stream_is_named_before_any_job(tmp_path):
    config = {**config_for(tmp_path / "empty"), "benchmarks": ["two"],
              "streams": {"two": {"tasks": [{"dataset": "cifar10", "classes": [0, 1]},
                                            {"dataset": "mine", "classes": [0, 1]}]}},
              "datasets": {"mine": {"path": str(tmp_path / "nowhere")}}}
    result = snakemake(tmp_path / "work", config, "all_tables")
    message = result.stdout + result.stderr
    assert result.returncode != 0 and "Nothing was run" in message
    assert not (tmp_path / "work/results/data").exists()
    assert message.count("Dataset 'cifar10'") == 1 and message.count("Dataset 'mine'") == 1
    assert str(tmp_path / "nowhere") in message
