"""tools/cost.py: the cost-on-paper arithmetic and the dry-run parsing, on hand-made input."""
import importlib.util
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
