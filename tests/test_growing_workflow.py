"""The growing methods (SPEC §9) through the real workflow on the tiny CIFAR-10 slice."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from test_workflow import TINY, scheduled_jobs, snakemake

pytestmark = pytest.mark.workflow
RUNS = ("pn", "ltg", "mntdp-s", "mntdp-d")


def growing_config(data_root: Path) -> dict:
    config = copy.deepcopy(TINY)
    config.update(data_root=str(data_root), backbone={"width": 4}, ltg={"search_epochs": 1},
                  runs={r: {"method": r} for r in RUNS})
    return config


@pytest.fixture(scope="module")
def growing_run(cifar10_slice, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("growing")
    config = growing_config(cifar10_slice)
    result = snakemake(workdir, config, "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config


def test_growing_runs_record_architecture_and_parameters(growing_run):
    workdir, _ = growing_run
    runs = workdir / "results/runs/cifar10-5/seed0"
    for run in RUNS:
        records = [json.loads((runs / run / f"states/task{t}.json").read_text()) for t in range(1, 6)]
        assert [r["predecessor"] for r in records] == [None, 1, 2, 3, 4]
        assert all("architecture" in r and r["n_params_added"] > 0 for r in records)
        # M grows by what each task adds; the final state's count is the run's M.
        assert sum(r["n_params_added"] for r in records) == records[-1]["n_params"]
        metrics = pd.read_parquet(runs / run / "metrics.parquet")
        assert int(metrics.n_params.iloc[0]) == records[-1]["n_params"]
        assert metrics.AF.iloc[0] == pytest.approx(0.0, abs=1e-12)  # old modules frozen: no forgetting
    searched = json.loads((runs / "mntdp-d/states/task3.json").read_text())
    assert searched["search_seconds"] > 0 and searched["trained_in_search"]
    assert set(searched["search"]["knn_accuracy"]) == {"1", "2"}


def test_a_growing_hyperparameter_reruns_its_chain_after_task_one_only(growing_run, tmp_path):
    """ltg.search_epochs and mntdp.knn_neighbors are used only by tasks that search
    (t ≥ 2): each reruns exactly those tasks of its methods, their metrics and the tables."""
    workdir = tmp_path / "work"
    shutil.copytree(growing_run[0], workdir, symlinks=True)
    config = copy.deepcopy(growing_run[1])
    config["ltg"] = {"search_epochs": 2}
    result = snakemake(workdir, config, "all_tables", "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert scheduled_jobs(result.stdout) == ({("learn_task", "ltg", t) for t in range(2, 6)}
                                             | {("metrics", "ltg", None), ("tables", None, None),
                                                ("all_tables", None, None)})
    config = copy.deepcopy(growing_run[1])
    config["mntdp"] = {"knn_neighbors": 3}
    result = snakemake(workdir, config, "all_tables", "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert scheduled_jobs(result.stdout) == ({("learn_task", r, t) for r in ("mntdp-s", "mntdp-d") for t in range(2, 6)}
                                             | {("metrics", r, None) for r in ("mntdp-s", "mntdp-d")}
                                             | {("tables", None, None), ("all_tables", None, None)})
