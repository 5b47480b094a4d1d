"""The workflow used as a Snakemake module from another project (issue 27,
docs/how-to/use-as-module.md): a folder outside the repository holding only a config
and a Snakefile that imports this workflow by path runs the tiny CIFAR-10 workflow to
its tables, and every path the workflow reads resolves against its own folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from par.infra.provenance import code_hash, lock_hash, read_provenance
from test_workflow import config_for, scheduled_jobs

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow

# What docs/how-to/use-as-module.md tells a user to write (the rules prefixed `par_`).
SNAKEFILE = """\
configfile: "config.yaml"


module par:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from par as par_*
"""


def test_the_workflow_runs_as_a_module_from_another_folder(cifar10_slice, tmp_path):
    project = tmp_path / "my-project"
    project.mkdir()
    assert not project.resolve().is_relative_to(REPO)
    config = config_for(cifar10_slice)
    config["runs"] = {"par": {"method": "par"}, "finetune": {"method": "finetune"}}
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    (project / "Snakefile").write_text(SNAKEFILE.format(snakefile=REPO / "Snakefile"))
    assert sorted(p.name for p in project.iterdir()) == ["Snakefile", "config.yaml"]

    result = subprocess.run([sys.executable, "-m", "snakemake", "par_all_tables", "--cores", "2"], cwd=project,
                            capture_output=True, text=True, timeout=1200, env={**os.environ, "PAR_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    ran = {rule for rule, _, _ in scheduled_jobs(result.stdout + result.stderr)}
    assert {"par_search_cell", "par_learn_task", "par_plan", "par_tables"} <= ran

    summary = pd.read_parquet(project / "results/tables/summary.parquet")
    assert sorted(summary["run"]) == ["finetune", "par"]
    assert summary["AP"].between(0, 1).all() and (summary["benchmark"] == "cifar10-5").all()
    assert "finetune" in (project / "results/tables/summary.md").read_text()
    # the rules ran this repository's scripts: the code hashes are those of its files
    record = read_provenance(project / "results/tables/summary.parquet")
    assert record["code_hash"] == code_hash(REPO / "workflow/scripts/tables.py", REPO / "par")
    lock = lock_hash(REPO / "requirements.lock")  # and the checkout's lock file
    assert lock is not None and record["lock"] == lock
    # the HTML report: its items, and the description and captions read from the workflow's folder
    report = subprocess.run([sys.executable, "-m", "snakemake", "par_all_tables", "--report", "report.html"],
                            cwd=project, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PAR_OFFLINE": "1"})
    assert report.returncode == 0, report.stderr[-4000:]
    html = (project / "report.html").read_text()
    for item in ("summary.html", "plans/cifar10-5-seed0-par.html", "accuracy/cifar10-5-seed0-finetune.png",
                 "table1: none of its benchmarks"):
        assert item in html, item
    # nothing of the workflow was looked for in (or copied to) the user's folder
    assert sorted(p.name for p in project.iterdir() if not p.name.startswith(".")) == [
        "Snakefile", "config.yaml", "report.html", "results"]


def test_module_config_is_validated_against_the_workflow_schema(cifar10_slice, tmp_path):
    """The schema path resolves against the workflow's folder: a bad value stops the
    module's dry run, naming the key."""
    config = config_for(cifar10_slice)
    config["threads"] = -3
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(snakefile=REPO / "Snakefile"))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "par_all_tables", "--cores", "1"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PAR_OFFLINE": "1"})
    assert result.returncode != 0
    output = result.stdout + result.stderr  # Snakemake prints the validation error on stdout
    assert "On instance['threads']" in output and "-3" in output
