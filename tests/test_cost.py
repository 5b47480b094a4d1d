"""tools/cost.py: the cost-on-paper arithmetic and the dry-run parsing, on hand-made input."""
import importlib.util
from collections import Counter
import sys
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("cost", Path(__file__).resolve().parents[1] / "tools/cost.py")
cost = importlib.util.module_from_spec(spec)
sys.modules["cost"] = cost  # dataclasses look their module up
spec.loader.exec_module(cost)

DRY_RUN = """\
rule learn_task:
    input: x
    wildcards: bench=b5, seed=0, run=finetune, task=0
rule learn_task:
    wildcards: bench=b5, seed=0, run=finetune, task=1
rule learn_task:
    wildcards: bench=b5, seed=0, run=ewc, task=0
rule learn_task:
    wildcards: bench=b5, seed=0, run=ewc, task=1
checkpoint plan:
    wildcards: bench=b5, seed=0, run=par
checkpoint plan:
    wildcards: bench=other, seed=0, run=alpha-0.3
rule tables:
    output: t.md
"""
CONFIG = {"training": {"epochs": 100}, "search": {"sample_epochs": 20},
          "runs": {"par": {"method": "par"}, "finetune": {"training": {"epochs": 50}}, "ewc": {"method": "ewc"}}}


def test_anchor_is_table5():
    # 1.1 h / (10 tasks * (100 search + 100 learn epochs))
    assert cost.TASK_EPOCH_HOURS == pytest.approx(0.00055)
    anchor = cost.estimate([cost.Run("cifar100-10/par", 10, 200)])
    assert anchor["gpu_hours"] == pytest.approx(1.1)


def test_estimate_by_hand():
    runs = [cost.Run("a", 2, 50), cost.Run("b", 4, 100), cost.Run("c", 1, 10)]
    r = cost.estimate(runs, gpus=(1, 2, 8), task_epoch_hours=0.01)
    # task-epochs: 100 + 400 + 10 = 510 -> 5.1 h; longest run 400 -> 4 h
    assert r["gpu_hours"] == pytest.approx(5.1)
    assert r["critical_hours"] == pytest.approx(4.0)
    assert r["makespan"] == pytest.approx({1: 5.1, 2: 4.0, 8: 4.0})
    r = cost.estimate([cost.Run("a", 1, 100)] * 8, gpus=(1, 2, 64), task_epoch_hours=0.01)
    assert r["makespan"] == pytest.approx({1: 8.0, 2: 4.0, 64: 1.0})


def test_runs_from_a_dry_run():
    jobs = cost.parse_dry_run(DRY_RUN)
    assert [r for r, _ in jobs] == ["learn_task"] * 4 + ["plan", "plan", "tables"]
    runs, counts = cost.runs_from_jobs(jobs, CONFIG)
    got = {r.label: (r.n_tasks, r.task_epochs) for r in runs}
    assert got == {"b5/0/finetune": (2, 50), "b5/0/ewc": (2, 100),
                   # PAR: tasks of its benchmark's baselines, sample_epochs + epochs
                   "b5/0/par (PAR)": (2, 120),
                   # a generated run takes the global training; a benchmark without baselines: 10 tasks
                   "other/0/alpha-0.3 (PAR)": (10, 120)}
    assert counts["learn_task"] == 4
    r = cost.estimate(runs, gpus=(1,), task_epoch_hours=0.001)
    assert r["gpu_hours"] == pytest.approx((100 + 200 + 240 + 1200) * 0.001)
    assert "| 1 |" in cost.table(r, runs, counts)


# ---- issue 28: submissions per SLURM profile --------------------------------------------

GROUPED_DRY_RUN = """\
rule extract_features:
    wildcards: bench=b5, seed=0, task=1
rule extract_features:
    wildcards: bench=b5, seed=0, task=2
Group job chain (jobs in lexicogr. order):

    rule learn_task:
        input: results/data/b5/seed0/task1.json
        wildcards: bench=b5, seed=0, run=finetune, task=1
    rule learn_task:
        input: results/data/b5/seed0/task2.json, results/runs/b5/seed0/finetune/states/task1.pt
        wildcards: bench=b5, seed=0, run=finetune, task=2
Group job chain (jobs in lexicogr. order):

    rule learn_task:
        input: results/data/b5/seed0/task1.json
        wildcards: bench=b5, seed=0, run=independent, task=1
Group job chain (jobs in lexicogr. order):

    rule learn_task:
        input: results/data/b5/seed0/task2.json
        wildcards: bench=b5, seed=0, run=independent, task=2
checkpoint plan:
    wildcards: bench=b5, seed=0, run=par
localrule tables:
    wildcards: x=1
"""


def test_chains_and_submissions_by_hand():
    chains = cost.learn_chains(GROUPED_DRY_RUN)
    assert sorted(map(sorted, chains)) == [[("b5", "0", "finetune", "1"), ("b5", "0", "finetune", "2")],
                                           [("b5", "0", "independent", "1")], [("b5", "0", "independent", "2")]]
    jobs = cost.parse_dry_run(GROUPED_DRY_RUN)  # indented (grouped) blocks count; localrules do not
    assert Counter(r for r, _ in jobs) == {"extract_features": 2, "learn_task": 4, "plan": 1}
    runs, _ = cost.runs_from_jobs(jobs, CONFIG)
    # plain: 2 extract + 4 learn + PAR's 2 tasks as a search and a learn job each;
    # paper: 1 array + 3 chains + PAR's 2 tasks, one allocation each at most
    assert cost.submissions(jobs, runs, chains) == {"slurm": 2 + 4 + 4, "slurm-paper": 1 + 3 + 2}
    assert cost.processes(jobs, runs) == 2 + 4 + 4
    text = cost.profile_table(cost.estimate(runs), jobs, runs, chains, job_startup=3600.0, snakemake_startup=0.0,
                              queue_wait_minutes=60.0)
    # start-up: 10 processes x 1 h; the longest run (PAR, 2 tasks x 120 task-epochs) waits 2 h, then 1 h
    assert "| slurm | 10 | 10.0 |" in text and "| slurm-paper | 6 | 10.0 |" in text
    hours = 2 * 120 * cost.TASK_EPOCH_HOURS
    assert f"2, {hours + 2 + 2:.1f} h" in text and f"1, {hours + 1 + 2:.1f} h" in text


def test_many_extract_jobs_go_out_in_arrays_of_the_plugins_limit():
    jobs = [("extract_features", {"bench": "b", "seed": "0", "task": str(t)}) for t in range(2500)]
    assert cost.submissions(jobs, [], []) == {"slurm": 2500, "slurm-paper": 3}


@pytest.mark.workflow
def test_one_group_job_per_chain_in_the_paper_profiles_dry_run(cifar10_slice, tmp_path):
    """Snakemake's own grouping (--profile workflow/profiles/slurm-paper) makes one group job
    per chain, as learn_chains counts them: finetune's 5 tasks in one, independent's 5 alone."""
    from test_workflow import REPO, config_for, snakemake

    config = config_for(cifar10_slice)
    config["runs"] = {"finetune": {"method": "finetune"}, "independent": {"method": "independent"}}
    result = snakemake(tmp_path, config, "all_tables", "--dry-run", "--profile",
                       str(REPO / "workflow/profiles/slurm-paper"))
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    groups = text.count("Group job chain")
    chains = cost.learn_chains(text)
    assert groups == len(chains) == 6
    assert sorted(len(c) for c in chains) == [1, 1, 1, 1, 1, 5]
    jobs = cost.parse_dry_run(text)
    runs, _ = cost.runs_from_jobs(jobs, config)
    assert cost.submissions(jobs, runs, chains) == {"slurm": 5 + 10, "slurm-paper": 1 + 6}
