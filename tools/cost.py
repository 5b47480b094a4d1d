"""GPU-hours and makespan of a target, on paper, before submitting it.

    python tools/cost.py paper --configfile config/config.yaml config/paper-all.yaml

Runs ``snakemake <target> -n`` (a dry run: nothing is computed), reads every
``learn_task`` job and every ``plan`` checkpoint job with its wildcards, and the
epochs of each run from the config files (merged in order, as Snakemake does;
a run the workflow generates, e.g. ``alpha-0.3``, takes the global ``training``).

Cost model (assumptions, stated plainly; no GPU was lent, nothing here is measured):

- Anchor: PAR on CIFAR100-10 takes 1.1 h per seed on the authors' GPU (paper Table 5):
  10 tasks, each a cell search of ``search.sample_epochs`` (100) supernet epochs plus
  ``training.epochs`` (100) expert epochs, counted as equally expensive.  So one
  *task-epoch* (one epoch over one task of ~4500 training images) costs
  ``U = 1.1 / (10 · (100 + 100)) = 0.00055`` GPU-hours.
- Every task-epoch costs U, whatever the method and benchmark (a light ResNet18 epoch and an
  expert epoch are taken as equal; benchmarks are taken at CIFAR100-10's task size, so the
  larger CTrL/MiniImageNet tasks are underestimated and the small ones overestimated).
- A baseline's task = ``epochs`` task-epochs (one ``learn_task`` job in the dry run).
- PAR's search/learn jobs sit behind the ``plan`` checkpoint and do not appear in a dry run:
  each PAR run (one ``plan`` job) is counted as ``n_tasks · (sample_epochs + epochs)``
  task-epochs, every task searching a cell (an upper bound: tasks that join a group or
  reuse a cell, and the fixed-cell rows, search nothing).  ``n_tasks`` of a benchmark is
  read from its baseline ``learn_task`` jobs (10 where there are none).
- Data preparation, features, distances, metrics, tables: ignored (seconds to minutes each).
- Makespan on G GPUs = max(total / G, critical path), the critical path being the longest
  run (its tasks are sequential).  One job per GPU (``gpu_slots_per_device`` 1).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_HOURS = 1.1          # PAR, CIFAR100-10, per seed (paper Table 5)
ANCHOR_TASK_EPOCHS = 10 * (100 + 100)
TASK_EPOCH_HOURS = ANCHOR_HOURS / ANCHOR_TASK_EPOCHS
GPUS = (1, 2, 8, 64)


@dataclass(frozen=True)
class Run:
    """One (benchmark, seed, run): ``n_tasks`` sequential tasks of ``task_epochs`` each."""

    label: str
    n_tasks: int
    task_epochs: int


def estimate(runs: list[Run], gpus=GPUS, task_epoch_hours: float = TASK_EPOCH_HOURS) -> dict:
    """{'gpu_hours', 'critical_hours', 'makespan': {G: hours}} of ``runs``.

    total = Σ n_tasks · task_epochs · U; critical = max of the same per run;
    makespan(G) = max(total / G, critical).
    """
    hours = [r.n_tasks * r.task_epochs * task_epoch_hours for r in runs]
    total = sum(hours)
    critical = max(hours, default=0.0)
    return {"gpu_hours": total, "critical_hours": critical,
            "makespan": {g: max(total / g, critical) for g in gpus}}


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(files: list[str]) -> dict:
    config: dict = {}
    for f in files:
        config = _merge(config, yaml.safe_load(Path(f).read_text()) or {})
    return config


_JOB = re.compile(r"^(?:rule|checkpoint) (\w+):")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


def parse_dry_run(text: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job block of a ``snakemake -n`` output."""
    jobs, rule = [], None
    for line in text.splitlines():
        if m := _JOB.match(line):
            rule = m.group(1)
            jobs.append((rule, {}))
        elif rule and (m := _WILDCARDS.match(line)):
            jobs[-1][1].update(kv.split("=", 1) for kv in m.group(1).split(", "))
    return jobs


def runs_from_jobs(jobs: list[tuple[str, dict]], config: dict) -> tuple[list[Run], Counter]:
    """The training runs of a dry run's jobs (see the module's cost model)."""
    training = config.get("training", {})
    configured = config.get("runs", {})
    sample_epochs = config.get("search", {}).get("sample_epochs", 100)

    def epochs(run: str) -> int:
        return int(configured.get(run, {}).get("training", {}).get("epochs", training.get("epochs", 100)))

    counts = Counter(rule for rule, _ in jobs)
    learn = defaultdict(set)
    tasks_of_bench = defaultdict(set)
    for rule, w in jobs:
        if rule == "learn_task":
            learn[(w["bench"], w["seed"], w["run"])].add(w["task"])
            tasks_of_bench[w["bench"]].add(w["task"])
    runs = [Run("/".join(key), len(tasks), epochs(key[2])) for key, tasks in learn.items()]
    for rule, w in jobs:
        if rule == "plan":
            n = len(tasks_of_bench.get(w["bench"], ())) or 10
            runs.append(Run(f"{w['bench']}/{w['seed']}/{w['run']} (PAR)", n, sample_epochs + epochs(w["run"])))
    return runs, counts


def table(result: dict, runs: list[Run], counts: Counter) -> str:
    par = sum(1 for r in runs if r.label.endswith("(PAR)"))
    par_tasks = sum(r.n_tasks for r in runs if r.label.endswith("(PAR)"))
    lines = [f"learn_task jobs in the dry run: {counts.get('learn_task', 0)}; PAR runs (plan jobs): {par} "
             f"(≈ {par_tasks} tasks behind the checkpoint); all jobs: {sum(counts.values())}",
             f"GPU-hours (assumed {TASK_EPOCH_HOURS:.5f} h per task-epoch): {result['gpu_hours']:.0f}; "
             f"longest run: {result['critical_hours']:.1f} h", "",
             "| GPUs | makespan (h) | makespan (days) |", "|---:|---:|---:|"]
    for g, h in result["makespan"].items():
        lines.append(f"| {g} | {h:.1f} | {h / 24:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("target", nargs="?", default="paper")
    p.add_argument("--configfile", nargs="+", default=[str(ROOT / "config/config.yaml")])
    p.add_argument("--dry-run-output", help="read this saved `snakemake -n` output instead of running it")
    args = p.parse_args(argv)
    if args.dry_run_output:
        text = Path(args.dry_run_output).read_text()
    else:
        proc = subprocess.run(["snakemake", args.target, "-n", "--configfile", *args.configfile],
                              cwd=ROOT, capture_output=True, text=True)
        text = proc.stdout + proc.stderr
        if proc.returncode:
            print(f"cost: snakemake {args.target} -n failed:\n{text[-2000:]}", file=sys.stderr)
            return 1
    runs, counts = runs_from_jobs(parse_dry_run(text), load_config(args.configfile))
    print(table(estimate(runs), runs, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
