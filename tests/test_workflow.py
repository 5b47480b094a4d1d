"""The real Snakemake workflow on a tiny slice of the real CIFAR-10 copy.

One full run of the DAG (7 runs × 5 tasks), then copies of its working folder
for each invalidation scenario, asserting on the exact set of jobs Snakemake
schedules.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow

TINY = {
    "results_dir": "results",
    "benchmarks": ["cifar10-5"],
    "seeds": [0],
    "device": "cpu",
    "threads": 1,
    "stream": {"max_train_per_class": 40, "max_test_per_class": 20},
    "extractor": {"weights": "random"},
    "training": {"epochs": 1, "batch_size": 32, "patience": None},
    "search": {"sample_epochs": 1, "channels": 4, "n_layers": 2, "batch_size": 32},
    "expert": {"channels": 4, "n_layers": 2},
    "backbone": {"width": 8},
    "planning": {"alpha": 1.0, "beta": 1.0},
    "runs": {"par": {"method": "par"}, "finetune": {"method": "finetune"},
             "independent": {"method": "independent"}, "ewc": {"method": "ewc"}, "lwf": {"method": "lwf"},
             "mas": {"method": "mas"}, "mas-alpha": {"method": "mas-alpha"},
             "er": {"method": "er"}, "agem": {"method": "agem"},
             "hat": {"method": "hat", "training": {"weight_decay": 0.0, "grad_clip": 10000}}},
}
RUNS = ("par", "finetune", "independent", "ewc", "lwf", "mas", "mas-alpha", "er", "agem", "hat")
JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")


def snakemake(workdir: Path, config: dict, *args: str, env: dict | None = None,
              timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in ``workdir`` with ``config``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           f"--configfile={workdir / 'config.yaml'}", "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PAR_OFFLINE": "1", **(env or {})})


def job_blocks(output: str) -> list[dict]:
    """Every job block Snakemake printed: rule, wildcards, and ``priority`` where
    it printed one (with ``--verbose``, for priorities other than 0)."""
    jobs, current = [], None
    for line in output.splitlines():
        header = JOB_HEADER.match(line.strip())
        if header:
            current = {"rule": header.group(1)}
            jobs.append(current)
        elif current is not None and line.strip().startswith("wildcards:"):
            current.update(kv.split("=", 1) for kv in line.strip()[len("wildcards:"):].strip().split(", "))
        elif current is not None and line.strip().startswith("priority:"):
            current["priority"] = int(line.split(":", 1)[1])
    return jobs


def scheduled_jobs(output: str) -> set[tuple]:
    """(rule, run, task) of every job block Snakemake printed."""
    return {(j["rule"], j.get("run"), int(j["task"]) if "task" in j else None) for j in job_blocks(output)}


def config_for(data_root: Path, **changes) -> dict:
    config = copy.deepcopy(TINY)
    config["data_root"] = str(data_root)
    for section, values in changes.items():
        config[section].update(values)
    return config


def fork(full_run, tmp_path) -> Path:
    """A copy of the finished run's folder (outputs, metadata, mtimes)."""
    workdir = tmp_path / "work"
    shutil.copytree(full_run[0], workdir, symlinks=True)
    return workdir


def test_full_run_produces_tables_from_real_images(full_run):
    workdir, config, output = full_run
    res = workdir / "results"
    ran = scheduled_jobs(output)
    assert {("learn_task", r, t) for r in RUNS for t in range(1, 6)} <= ran
    assert {("extract_features", None, t) for t in range(1, 6)} <= ran

    summary = pd.read_parquet(res / "tables/summary.parquet")
    assert sorted(summary.run) == sorted(RUNS)
    assert summary.AP.between(0, 1).all() and summary.AF.between(-1, 1).all()
    assert (summary.set_index("run").AF["independent"]) == 0.0
    assert summary.set_index("run").extractor_weights["par"] == "torchvision resnet18 random init (seed 0)"
    aggregate = pd.read_parquet(res / "tables/aggregate.parquet")
    assert set(aggregate.columns) >= {"AP_mean", "AP_std", "paper_AP"}
    assert "| cifar10-5" in (res / "tables/aggregate.md").read_text()
    assert (res / "tables/ap_vs_parameters.png").stat().st_size > 1000

    distances = pq.read_table(res / "relatedness/cifar10-5/seed0/distances.parquet")
    assert distances.num_rows == 25 and distances.schema.field("kl").metadata[b"description"]
    assert b"random init" in distances.schema.metadata[b"extractor_weights"]
    assert (res / "relatedness/cifar10-5/seed0/distances.png").exists()

    plan = json.loads((res / "runs/cifar10-5/seed0/par/plan.json").read_text())
    # alpha = beta = 1 and s < 1 always: one group, every later task learned by regularization
    assert plan["groups"] == {"1": [1, 2, 3, 4, 5]}
    assert [t["strategy"] for t in plan["tasks"]][1:] == ["regularize"] * 4
    cell = json.loads((res / "runs/cifar10-5/seed0/par/cells/task1.json").read_text())
    assert len(cell["genotype"]["normal"]) == 8 and len(cell["history"]) == 1

    matrix = pd.read_parquet(res / "runs/cifar10-5/seed0/finetune/accuracy_matrix.parquet")
    assert len(matrix) == 15 and matrix.measured.all()
    for rule in ("decode_dataset", "prepare_stream", "extract_features", "distances", "plan", "search_cell",
                 "learn_task", "metrics"):
        assert list((res / "logs" / rule).rglob("*.log")), f"no log for {rule}"
    assert list((res / "benchmarks/learn_task").rglob("*.tsv"))


def test_nothing_changed_reruns_nothing(full_run, tmp_path):
    workdir = fork(full_run, tmp_path)
    result = snakemake(workdir, full_run[1], "all_tables", "--dry-run")
    assert result.returncode == 0
    assert scheduled_jobs(result.stdout) == set()
    assert "Nothing to be done" in result.stdout + result.stderr


def rerun_tasks(old_plan: list[dict], new_plan: list[dict]) -> set[int]:
    """Tasks whose decision changed, and every task chained after one of them."""
    params = ("group", "strategy", "predecessor", "group_tasks", "genotype_source")
    old = {d["task"]: [d[k] for k in params] for d in old_plan}
    rerun = set()
    for d in new_plan:
        if old[d["task"]] != [d[k] for k in params] or d["predecessor"] in rerun:
            rerun.add(d["task"])
    return rerun


def test_alpha_change_reruns_plan_affected_tasks_and_tables_only(full_run, tmp_path):
    workdir = fork(full_run, tmp_path)
    plan_path = workdir / "results/runs/cifar10-5/seed0/par/plan.json"
    old_plan = json.loads(plan_path.read_text())["tasks"]
    cells_before = {p.name for p in plan_path.parent.glob("cells/*.json")}
    config = config_for(Path(full_run[1]["data_root"]), planning={"alpha": 0.0, "beta": 1.0})

    result = snakemake(workdir, config, "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    new_plan = json.loads(plan_path.read_text())["tasks"]
    rerun = rerun_tasks(old_plan, new_plan)
    assert rerun and 1 not in rerun, "alpha = 0 should turn later regularize tasks into allocations"
    new_searches = {d["task"] for d in new_plan if d["strategy"] == "allocate-search"
                    and d["genotype_source"] == d["task"] and f"task{d['task']}.json" not in cells_before}
    expected = ({("plan", "par", None), ("metrics", "par", None), ("tables", None, None), ("all_tables", None, None)}
                | {("learn_task", "par", t) for t in rerun} | {("search_cell", "par", t) for t in new_searches})
    assert scheduled_jobs(result.stdout + result.stderr) == expected


def reversed_keys(value):
    """``value`` with every dict's keys in the reverse order, at every depth."""
    if isinstance(value, dict):
        return {k: reversed_keys(v) for k, v in reversed(list(value.items()))}
    return value


def test_moving_keys_or_writing_out_defaults_reruns_nothing(full_run, tmp_path):
    """Snakemake compares params by repr, which lists a dict's keys in insertion
    order; par.runs.Param sorts them.  Every section's keys reversed (but the
    runs, whose order is the tables' row order), and
    defaults written out (they land before the defaults the schema fills in):
    a dry run on the finished copy schedules nothing.  A changed value still re-runs."""
    workdir = fork(full_run, tmp_path)
    data_root = Path(full_run[1]["data_root"])
    config = {**reversed_keys(config_for(data_root)),  # but the runs: their order is the tables' row order
              "runs": {run: reversed_keys(settings) for run, settings in full_run[1]["runs"].items()}}
    config["training"] = {"lr": 0.01, "momentum": 0.9, **config["training"]}         # schema defaults
    config["planning"] = {"head_only_ratio": 0.5, **config["planning"]}
    config["search"] = {"lr": 0.01, **config["search"]}
    assert list(config["stream"]) != list(full_run[1]["stream"]) and list(config["training"])[0] == "lr"
    result = snakemake(workdir, config, "all_tables", "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert scheduled_jobs(result.stdout) == set(), result.stdout[-3000:]
    config["planning"]["head_only_ratio"] = 0.4
    result = snakemake(workdir, config, "all_tables", "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert ("plan", "par", None) in scheduled_jobs(result.stdout)


def test_neutral_training_values_rerun_nothing_and_others_rerun_learning(full_run, tmp_path):
    """par.infra.config.NEUTRAL_VALUES: writing amp: off and compile: false out (the defaults,
    keys added after results existed) schedules nothing on the finished run;
    compile: true re-runs every learn job (dry runs on a copy)."""
    workdir = fork(full_run, tmp_path)
    data_root = Path(full_run[1]["data_root"])
    result = snakemake(workdir, config_for(data_root, training={"amp": "off", "compile": False}), "all_tables",
                       "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert scheduled_jobs(result.stdout) == set(), result.stdout[-3000:]
    result = snakemake(workdir, config_for(data_root, training={"compile": True}), "all_tables", "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert {("learn_task", r, t) for r in RUNS for t in range(1, 6)} <= scheduled_jobs(result.stdout)


def test_training_change_reruns_learning_only(full_run, tmp_path):
    """The job set from a dry run; then one of those jobs runs, and trains with the new setting."""
    workdir = fork(full_run, tmp_path)
    config = config_for(Path(full_run[1]["data_root"]), training={"epochs": 2})
    result = snakemake(workdir, config, "all_tables", "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    expected = ({("learn_task", r, t) for r in RUNS for t in range(1, 6)} | {("metrics", r, None) for r in RUNS}
                | {("tables", None, None), ("all_tables", None, None)})
    assert scheduled_jobs(result.stdout) == expected
    state = "results/runs/cifar10-5/seed0/finetune/states/task1.json"
    result = snakemake(workdir, config, state)
    assert result.returncode == 0, result.stderr[-4000:]
    assert scheduled_jobs(result.stdout + result.stderr) == {("learn_task", "finetune", 1)}
    assert json.loads((workdir / state).read_text())["epochs_run"] == 2



def test_par_jobs_start_before_the_baselines_when_both_are_ready(full_run, tmp_path):
    """PAR's cell search and learn jobs carry priority 1 (its experts are the
    slowest jobs and its groups chains of them), every baseline job 0."""
    workdir = fork(full_run, tmp_path)
    result = snakemake(workdir, full_run[1], "all_tables", "-n", "--verbose", "--forcerun", "search_cell", "learn_task")
    assert result.returncode == 0, result.stderr[-4000:]
    compute = [j for j in job_blocks(result.stdout + result.stderr) if j["rule"] in ("search_cell", "learn_task")]
    assert {(j["rule"], j["run"]) for j in compute} == ({("search_cell", "par")}
                                                         | {("learn_task", r) for r in RUNS})
    for job in compute:
        assert job.get("priority", 0) == (1 if job["run"] == "par" else 0), job
    # the relatedness stage feeds PAR's plan: it too starts before the baselines' learn jobs
    result = snakemake(workdir, full_run[1], "all_tables", "-n", "--verbose", "--forcerun", "extract_features")
    assert result.returncode == 0, result.stderr[-4000:]
    upstream = [j for j in job_blocks(result.stdout + result.stderr)
                if j["rule"] in ("extract_features", "prototypes", "distances", "plan")]
    assert {j["rule"] for j in upstream} == {"extract_features", "prototypes", "distances", "plan"}
    assert all(j.get("priority", 0) == 1 for j in upstream), upstream

def test_baseline_weight_change_reruns_its_chain_after_task_one_only(full_run, tmp_path):
    """ewc.lambda is not used by a chain's first task (no penalty yet) and
    mas.importance only by mas: each reruns exactly the tasks that use it."""
    workdir = fork(full_run, tmp_path)
    config = config_for(Path(full_run[1]["data_root"]))
    config["ewc"] = {"lambda": 10.0}
    config["mas"] = {"importance": "aljundi"}
    result = snakemake(workdir, config, "all_tables", "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    expected = ({("learn_task", "ewc", t) for t in range(2, 6)} | {("learn_task", "mas", t) for t in range(1, 6)}
                | {("metrics", r, None) for r in ("ewc", "mas")} | {("tables", None, None), ("all_tables", None, None)})
    assert scheduled_jobs(result.stdout) == expected


def test_memory_size_reruns_er_and_agem_after_task_one_only(full_run, tmp_path):
    """memory.samples_per_class is first used by task 2's job (it draws task 1's
    memory), so it reruns tasks 2-5 of er and agem; hat.c is used from task 1 on."""
    workdir = fork(full_run, tmp_path)
    config = config_for(Path(full_run[1]["data_root"]))
    config["memory"] = {"samples_per_class": 3}
    config["hat"] = {"c": 0.5}
    result = snakemake(workdir, config, "all_tables", "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    expected = ({("learn_task", r, t) for r in ("er", "agem") for t in range(2, 6)}
                | {("learn_task", "hat", t) for t in range(1, 6)}
                | {("metrics", r, None) for r in ("er", "agem", "hat")} | {("tables", None, None), ("all_tables", None, None)})
    assert scheduled_jobs(result.stdout) == expected


def test_memory_and_mask_records_of_the_real_run(full_run):
    """The real run's records: er/agem hold k per class of every earlier task
    (10 × 2 per task here), read back from images.h5; hat carries 17 × 8 mask units."""
    res = full_run[0] / "results/runs/cifar10-5/seed0"
    for run in ("er", "agem"):
        for t in range(1, 6):
            record = json.loads((res / f"{run}/states/task{t}.json").read_text())
            assert record["n_memory"] == 20 * (t - 1) and record["n_carried"] == 3 * 20 * (t - 1)
    hat = json.loads((res / "hat/states/task5.json").read_text())
    assert hat["n_mask_units"] == hat["n_carried"] == 17 * 8


@pytest.mark.parametrize("change, needle", [
    ({"benchmarks": ["cifar10-6"]}, "cifar10-6"),
    ({"runs": {"replay": {"method": "replay"}}}, "replay"),
    ({"runs": {"ewc": {"method": "ewc", "ewc": {"lamda": 1.0}}}}, "lamda"),
    ({"mas": {"importance": "fisher"}}, "fisher"),
    ({"planning": {"alpha": 1.5}}, "1.5"),
    ({"planning": {"beta": -0.1}}, "-0.1"),
    ({"training": {"epochs": 0}}, "epochs"),
    ({"planing": {"alpha": 0.4}}, "planing"),
    ({"planning": {"alpah": 0.4}}, "alpah"),
    ({"runs": {"par": {"method": "par", "trainig": {"epochs": 3}}}}, "trainig"),
    ({"planning": {"alpha": 0.8, "beta": 0.6}}, "alpha"),
])
def test_bad_config_stops_before_any_job_naming_the_key(change, needle, cifar10_slice, tmp_path):
    config = config_for(cifar10_slice)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict) and key != "runs":
            config[key].update(value)
        else:
            config[key] = value
    result = snakemake(tmp_path, config, "all_tables")
    assert result.returncode != 0
    assert needle in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_missing_data_offline_stops_before_any_job(tmp_path):
    config = config_for(tmp_path / "empty")
    result = snakemake(tmp_path / "work", config, "all_tables")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "was not found under data_root" in message and "cifar10-jpg.tar.gz" in message
    assert not (tmp_path / "work" / "results").exists()


def test_killed_job_leaves_no_output_a_rerun_would_trust(cifar10_slice, tmp_path):
    config = config_for(cifar10_slice, training={"epochs": 500})
    config["runs"] = {"finetune": {"method": "finetune"}}
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           f"--configfile={workdir / 'config.yaml'}", "--cores", "1", "all_tables"]
    log = workdir / "results/logs/learn_task/cifar10-5/seed0/finetune/task1.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PAR_OFFLINE": "1"})
    try:
        deadline = time.time() + 300
        while not (log.exists() and "epoch 3/500" in log.read_text()):
            assert proc.poll() is None and time.time() < deadline, "the learn job never got going"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    states = workdir / "results/runs/cifar10-5/seed0/finetune/states"
    assert not list(states.glob("task1.*"))
    dry = snakemake(workdir, config, "all_tables", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert ("learn_task", "finetune", 1) in scheduled_jobs(dry.stdout)
