"""A method of one's own, in one file outside the repository, through the real
workflow: registered by the config key ``method_modules``, its rows appear in the
summary, adding it re-runs no existing job, and editing it re-runs only its own
learn jobs, its metrics and the tables."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from par.infra.provenance import read_provenance

from test_workflow import RUNS, fork, scheduled_jobs, snakemake

pytestmark = pytest.mark.workflow
PLUGIN = Path(__file__).resolve().parent / "plugins" / "l2_anchor.py"
OWN_JOBS = ({("learn_task", "l2", t) for t in range(1, 6)} | {("metrics", "l2", None)}
            | {("tables", None, None), ("all_tables", None, None)})


def test_a_method_file_outside_the_repository_runs_beside_the_others(full_run, tmp_path):
    workdir = fork(full_run, tmp_path)
    plugin = tmp_path / "my_methods" / "l2_anchor.py"
    plugin.parent.mkdir()
    shutil.copy(PLUGIN, plugin)
    config = {**full_run[1], "method_modules": ["../my_methods/l2_anchor.py"],  # relative to the working folder
              "runs": {**full_run[1]["runs"], "l2": {"method": "l2-anchor", "l2_anchor": {"lambda": 0.5}}}}

    result = snakemake(workdir, config, "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    # adding the method re-ran no job of the existing runs
    assert scheduled_jobs(result.stdout + result.stderr) == OWN_JOBS
    summary = pd.read_parquet(workdir / "results/tables/summary.parquet")
    assert sorted(summary.run) == sorted([*RUNS, "l2"])
    row = summary.set_index("run").loc["l2"]
    assert 0 <= row.AP <= 1 and row.method == "l2-anchor"
    learned = read_provenance(workdir / "results/runs/cifar10-5/seed0/l2/states/task2.json")["config"]
    assert learned["strategy"]["options"] == {"lambda": 0.5} and learned["modules"] == ["../my_methods/l2_anchor.py"]

    with open(plugin, "a") as f:
        f.write("\n# an edit\n")
    dry = snakemake(workdir, config, "all_tables", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-4000:]
    assert scheduled_jobs(dry.stdout) == OWN_JOBS

    broken = {**config, "method_modules": ["../my_methods/missing.py"]}
    failed = snakemake(workdir, broken, "all_tables", "--dry-run")
    assert failed.returncode != 0
    assert "../my_methods/missing.py (config key method_modules): could not be imported" in failed.stdout + failed.stderr
