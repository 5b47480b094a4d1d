"""GPU-hours, makespan and SLURM submissions of a target, on paper, before submitting it.

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

Submissions and start-up, per SLURM profile (issue 28; docs/how-to/slurm.md):

- ``slurm`` (workflow/profiles/slurm): one ``sbatch`` per remote job (``extract_features``,
  ``search_cell``, ``learn_task``); behind the checkpoint each PAR task counts a search and a
  learn job (upper bound, as above).
- ``slurm-paper`` (workflow/profiles/slurm-paper): one per chain, i.e. per connected
  component of the ``learn_task`` jobs (a job is linked to the job whose state it reads,
  taken from the dry run's ``input:`` lines, as Snakemake's job groups link them); the
  ``extract_features`` jobs as ``ceil(n / 1000)`` arrays (the plugin's ``--slurm-array-limit``);
  a PAR run as one allocation per task group, between 1 and ``n_tasks`` (the plan decides;
  the upper bound is printed).
- Every job process pays a start-up before its first batch and after its last
  (``--job-startup-seconds``, the interpreter, ``import torch``, reading inputs, writing the
  record: the learn record's clock against the rule's benchmark TSV); every SLURM job also
  runs a Snakemake that parses the workflow (``--snakemake-startup-seconds``, README, Speed:
  ``tools/startup.py``).  A grouped allocation runs one Snakemake for all its jobs.  Both hold
  the job's GPU, so they are added to the GPU-hours.
- Every submission waits in the queue (``--queue-wait-minutes``, a property of the cluster):
  a chain under the plain profile waits once per task, under the paper profile once.
"""
from __future__ import annotations

import argparse
import math
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


_JOB = re.compile(r"^\s*(?:rule|checkpoint) (\w+):")  # indented inside a group job
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


# Start-up per job process and per SLURM job, in seconds (docs/how-to/slurm.md, "Start-up").
JOB_STARTUP_SECONDS = 3.4        # demo learn jobs before issue 28: 134 s over 40 jobs, benchmark TSV − record
SNAKEMAKE_STARTUP_SECONDS = 2.6  # `snakemake -n` of config/config.yaml with the SLURM plugin (README, Speed)
ARRAY_LIMIT = 1000               # tasks per array submission (snakemake-executor-plugin-slurm default)
REMOTE_RULES = ("extract_features", "search_cell", "learn_task")  # every other rule is a localrule
PROFILES = ("slurm", "slurm-paper")

_INPUT = re.compile(r"^\s+input: (.*)$")
_STATE = re.compile(r"runs/([^/]+)/seed([^/]+)/([^/]+)/states/task(\d+)\.pt$")


def learn_chains(text: str) -> list[set[tuple]]:
    """Connected components of the ``learn_task`` jobs of a ``snakemake -n`` output: job
    (bench, seed, run, task) is linked to the job whose state (``.../states/task<k>.pt``)
    is among its inputs.  What ``--groups learn_task=chain`` makes one group job each."""
    parent: dict[tuple, tuple] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for rule_name, wildcards, job_inputs in _blocks(text):
        if rule_name != "learn_task":
            continue
        job = (wildcards["bench"], wildcards["seed"], wildcards["run"], wildcards["task"])
        find(job)
        for f in job_inputs:
            if m := _STATE.search(f):
                parent[find(job)] = find(m.groups())
    components: dict[tuple, set] = defaultdict(set)
    for job in list(parent):
        components[find(job)].add(job)
    return list(components.values())


def _blocks(text: str):
    """(rule, wildcards, inputs) of every job block, grouped or not, local or not."""
    blocks = []
    for line in text.splitlines():
        if m := re.match(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):", line):
            blocks.append((m.group(1), {}, []))
        elif blocks and (m := _WILDCARDS.match(line)):
            blocks[-1][1].update(kv.split("=", 1) for kv in m.group(1).split(", "))
        elif blocks and (m := _INPUT.match(line)):
            blocks[-1][2].extend(m.group(1).split(", "))
    return blocks


def submissions(jobs: list[tuple[str, dict]], runs: list[Run], chains: list[set]) -> dict[str, int]:
    """sbatch submissions of the target per profile (see the module's model)."""
    counts = Counter(rule for rule, _ in jobs)
    par_tasks = sum(r.n_tasks for r in runs if r.label.endswith("(PAR)"))
    remote = sum(counts.get(rule, 0) for rule in REMOTE_RULES)
    n_extract = counts.get("extract_features", 0)
    return {"slurm": remote + 2 * par_tasks,
            # a search_cell job joins the group of the learn job that reads its cell
            "slurm-paper": math.ceil(n_extract / ARRAY_LIMIT) + len(chains) + par_tasks}


def processes(jobs: list[tuple[str, dict]], runs: list[Run]) -> int:
    """Job processes (each pays the job start-up): remote jobs + PAR's search and learn jobs."""
    counts = Counter(rule for rule, _ in jobs)
    return sum(counts.get(rule, 0) for rule in REMOTE_RULES) + 2 * sum(
        r.n_tasks for r in runs if r.label.endswith("(PAR)"))


def learn_startup(results_dir: str | Path) -> list[dict]:
    """Start-up of every learn job of a finished run: the process's wall time (column ``s``
    of ``benchmarks/learn_task/<bench>/seed<s>/<run>/task<t>.tsv``) minus the record's own
    clock (``seconds`` of ``runs/<bench>/seed<s>/<run>/states/task<t>.json``), in seconds.
    Raises FileNotFoundError when the folder holds no learn benchmark."""
    import csv
    import json

    results_dir = Path(results_dir)
    rows = []
    for tsv in sorted((results_dir / "benchmarks" / "learn_task").glob("*/seed*/*/task*.tsv")):
        bench, seed, run, task = tsv.relative_to(results_dir / "benchmarks" / "learn_task").with_suffix("").parts
        record = results_dir / "runs" / bench / seed / run / "states" / f"{task}.json"
        if not record.exists():
            continue
        with open(tsv) as f:
            wall = float(next(csv.DictReader(f, delimiter="\t"))["s"])
        learned = json.loads(record.read_text())["seconds"]
        rows.append({"job": f"{bench}/{seed}/{run}/{task}", "wall_seconds": wall, "learn_seconds": learned,
                     "startup_seconds": wall - learned})
    if not rows:
        raise FileNotFoundError(f"no learn_task benchmark with its record under {results_dir}")
    return rows


def profile_table(result: dict, jobs, runs: list[Run], chains: list[set], *, job_startup: float,
                  snakemake_startup: float, queue_wait_minutes: float) -> str:
    """Per profile: submissions, start-up GPU-hours and the longest chain's makespan with queue waits."""
    n_processes = processes(jobs, runs)
    critical = max(runs, key=lambda r: r.n_tasks * r.task_epochs, default=None)
    lines = [f"Per SLURM profile (job start-up {job_startup:.1f} s per job process, Snakemake start-up "
             f"{snakemake_startup:.1f} s per SLURM job, queue wait {queue_wait_minutes:g} min per submission):", "",
             "| profile | sbatch submissions | start-up GPU-hours | longest chain: submissions, hours with queue waits |",
             "|---|---:|---:|---|"]
    for profile, n in submissions(jobs, runs, chains).items():
        startup_hours = (n_processes * job_startup + n * snakemake_startup) / 3600
        if critical is None:
            chain = "-"
        else:
            waits = critical.n_tasks if profile == "slurm" else 1
            hours = (result["critical_hours"] + waits * queue_wait_minutes / 60
                     + critical.n_tasks * job_startup / 3600 + waits * snakemake_startup / 3600)
            chain = f"{waits}, {hours:.1f} h ({critical.label}, {critical.n_tasks} tasks)"
        lines.append(f"| {profile} | {n} | {startup_hours:.1f} | {chain} |")
    par = [r for r in runs if r.label.endswith("(PAR)")]
    counts = Counter(rule for rule, _ in jobs)
    lines.append(f"\nslurm-paper: {len(chains)} learn chains in the dry run, {counts.get('extract_features', 0)} "
                 f"extract_features jobs in arrays of up to {ARRAY_LIMIT}.")
    if par:
        n_par = sum(r.n_tasks for r in par)
        at_least = submissions(jobs, runs, chains)["slurm-paper"] - n_par + len(par)
        lines.append(f"PAR behind the plan checkpoint: {n_par} tasks counted as {2 * n_par} jobs (slurm) and as "
                     f"{n_par} allocations (slurm-paper, one per task group: an upper bound; with one group per "
                     f"run {at_least} submissions in all).")
    return "\n".join(lines)


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
    p.add_argument("target", nargs="?", default="paper", help="'none' with --startup-from: only measure")
    p.add_argument("--configfile", nargs="+", default=[str(ROOT / "config/config.yaml")])
    p.add_argument("--dry-run-output", help="read this saved `snakemake -n` output instead of running it")
    p.add_argument("--job-startup-seconds", type=float, default=JOB_STARTUP_SECONDS,
                   help="start-up of one job process (default: %(default)s s, the demo's learn jobs)")
    p.add_argument("--snakemake-startup-seconds", type=float, default=SNAKEMAKE_STARTUP_SECONDS,
                   help="workflow parse of the Snakemake inside each SLURM job (default: %(default)s s)")
    p.add_argument("--startup-from", metavar="RESULTS_DIR",
                   help="measure the job start-up on a finished run's learn jobs (benchmark TSV − record) "
                        "and use their mean")
    p.add_argument("--queue-wait-minutes", type=float, default=10.0,
                   help="queue wait of one submission on your cluster (default: %(default)s min)")
    args = p.parse_args(argv)
    if args.startup_from:
        rows = learn_startup(args.startup_from)
        total, learned = sum(r["wall_seconds"] for r in rows), sum(r["startup_seconds"] for r in rows)
        args.job_startup_seconds = learned / len(rows)
        print(f"start-up of {len(rows)} learn jobs in {args.startup_from}: {learned:.1f} s of their {total:.1f} s "
              f"({100 * learned / total:.0f} %), {args.job_startup_seconds:.2f} s per job "
              f"(min {min(r['startup_seconds'] for r in rows):.2f}, max {max(r['startup_seconds'] for r in rows):.2f})")
        if args.target == "none":
            return 0
    if args.dry_run_output:
        text = Path(args.dry_run_output).read_text()
    else:
        proc = subprocess.run(["snakemake", args.target, "-n", "--configfile", *args.configfile],
                              cwd=ROOT, capture_output=True, text=True)
        text = proc.stdout + proc.stderr
        if proc.returncode:
            print(f"cost: snakemake {args.target} -n failed:\n{text[-2000:]}", file=sys.stderr)
            return 1
    jobs = parse_dry_run(text)
    runs, counts = runs_from_jobs(jobs, load_config(args.configfile))
    result = estimate(runs)
    print(table(result, runs, counts))
    print()
    print(profile_table(result, jobs, runs, learn_chains(text), job_startup=args.job_startup_seconds,
                        snakemake_startup=args.snakemake_startup_seconds, queue_wait_minutes=args.queue_wait_minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
