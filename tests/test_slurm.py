"""The SLURM profile (workflow/profiles/slurm) against a real single-node SLURM
cluster started on this machine (tests/slurm/local_cluster.py).

The tiny workflow with one run, ``independent`` (its five learn_task jobs do
not depend on each other, so two can hold the two fake GPUs at once), runs
through ``--profile workflow/profiles/slurm``.  On the command line only what a
user adapts to their cluster: the profile's default-resources with the
partition replaced, a 5 s first status check instead of 40 s so the test does
not idle, and, for inspection, --slurm-keep-successful-logs and --verbose
(which logs each sbatch call).  ``device: auto`` makes the GPU rules request
``gpu=1``; the node's GPUs are fake, so torch falls back to the CPU, but Slurm
allocates one GPU to each such job and sets CUDA_VISIBLE_DEVICES, which the
cluster's task prolog writes into the job's SLURM log.

The paper-scale profile (workflow/profiles/slurm-paper) runs finetune's 5-task
chain up to its accuracy matrix: one allocation for the chain (issue 28).  The
same chain whose task 3 runs out of memory in its first allocation (a test
method plays the kill, as the cluster enforces no memory): Snakemake's retry
asks for twice the memory and learns the whole chain again; a new Snakemake run
after a failed one goes on from task 3 (docs/how-to/slurm.md, "When an
allocation dies").

Needs root and ``apt-get install -y slurm-wlm munge``; with ``slurmdbd
mariadb-server`` as well, the cluster keeps accounts and the executor's default
status command, sacct, is used, else ``--slurm-status-command squeue``.
PAR_SLURM_ACCOUNTING=0 forces the squeue variant.  Skipped where the cluster
cannot start (see local_cluster.cannot_start).  On 2 cores: about 1.5 minutes
for the plain profile (10 s of it for the cluster), 1 for the paper profile,
1.5 for the retry and 2 for the new run, 6.5 in all.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml

from slurm.local_cluster import PROLOG_TAG, LocalSlurm, cannot_start
from test_workflow import REPO, config_for, scheduled_jobs, snakemake

CANNOT_START = cannot_start()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(CANNOT_START is not None, reason=str(CANNOT_START))]

PROFILE = REPO / "workflow" / "profiles" / "slurm"
GPU_RULES = {"learn_task", "extract_features", "search_cell"}
# a job's id is a number, a group job's a UUID
SUBMITTED = re.compile(r"Job \S+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
REMOTE_JOB = re.compile(r"^rule (\w+):$")  # "localrule x:" runs on the submitting machine


def _accounting() -> bool | None:
    flag = os.environ.get("PAR_SLURM_ACCOUNTING")
    return None if flag is None else flag not in ("0", "false", "no", "")


def run_through_slurm(tmp_path_factory, name: str, profile: Path, config: dict, target: str,
                      invocations: tuple[tuple[str, ...], ...] = ((),)) -> SimpleNamespace:
    """Start a cluster, run ``target`` through ``profile`` (the profile's default-resources
    with the cluster's partition), collect what the cluster recorded, then stop the
    cluster (also when anything failed).  ``name`` names the temporary folders.

    One Snakemake run per entry of ``invocations``, with that entry's extra arguments,
    one after the other in the same folder; the last must succeed.  ``output``: what
    they printed, in order; ``returncodes``: theirs."""
    cluster = LocalSlurm(tmp_path_factory.mktemp(f"{name}_cluster"), partition="debug", cpus=2, gpus=2,
                         accounting=_accounting())
    workdir = tmp_path_factory.mktemp(f"{name}_workflow")
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    resources = {**settings["default-resources"], "slurm_partition": cluster.partition}
    args = ["--profile", str(profile),
            "--default-resources", *(f"{k}={v}" for k, v in resources.items()),
            "--slurm-init-seconds-before-status-checks", "5",
            "--slurm-keep-successful-logs", "--verbose"]
    try:
        started = time.monotonic()
        cluster.start()
        start_seconds = time.monotonic() - started
        if not cluster.accounting:
            args += ["--slurm-status-command", "squeue"]
        started = time.monotonic()
        outputs, returncodes = [], []
        for extra in invocations:
            # extra first: an option of several values (--set-resources) would take the target too
            result = snakemake(workdir, config, *extra, *args, target, env=cluster.env, timeout=900)
            outputs.append(result.stdout + result.stderr)
            returncodes.append(result.returncode)
        output = "\n".join(outputs)
        assert returncodes[-1] == 0, f"{output[-6000:]}\n{cluster.log_tail()}"
        run = SimpleNamespace(workdir=workdir, config=config, output=output, returncodes=returncodes,
                              cluster=cluster, start_seconds=start_seconds, run_seconds=time.monotonic() - started,
                              jobs={j["JobID"]: j for j in cluster.jobs()})
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root / "db", ignore_errors=True)  # 100 MB of MariaDB files; logs stay
    print(f"\n{name}: cluster up in {run.start_seconds:.1f} s, workflow via SLURM in {run.run_seconds:.1f} s "
          f"(accounting: {cluster.accounting})")
    return run


@pytest.fixture(scope="module")
def slurm_run(cifar10_slice, tmp_path_factory):
    """all_tables of the run ``independent`` through workflow/profiles/slurm."""
    config = config_for(cifar10_slice)
    config["device"] = "auto"
    config["runs"] = {"independent": {"method": "independent"}}
    return run_through_slurm(tmp_path_factory, "slurm", PROFILE, config, "all_tables")


def submitted(run) -> dict[str, Path]:
    """SLURM job id -> its log file, for every job Snakemake submitted."""
    return {job_id: run.workdir / log for job_id, log in SUBMITTED.findall(run.output)}


def sbatch_calls(run) -> dict[str, str]:
    """SLURM job id -> the sbatch command line Snakemake logged (--verbose) for it."""
    calls = [line for line in run.output.splitlines() if line.startswith("sbatch call: ")]
    out = {}
    for job_id in submitted(run):
        comment = run.jobs[job_id]["Comment"]
        matching = [c for c in calls if f"--comment {comment} " in c]
        assert len(matching) == 1, f"{len(matching)} sbatch calls for job {job_id} ({comment})"
        out[job_id] = matching[0]
    return out


def rule_of(job: dict) -> str:
    """The rule of a SLURM job, from the comment the executor gives it."""
    match = re.match(r"rule_(\w+?)(?:_wildcards_|$)", job["Comment"])
    assert match, f"job {job['JobID']} has no rule comment: {job}"
    return match.group(1)


def test_every_remote_job_ran_as_a_slurm_job(slurm_run):
    ran = scheduled_jobs(slurm_run.output)
    assert {("learn_task", "independent", t) for t in range(1, 6)} <= ran
    remote = [m.group(1) for line in slurm_run.output.splitlines() if (m := REMOTE_JOB.match(line.strip()))]
    jobs = submitted(slurm_run)
    assert len(jobs) == len(remote) and remote.count("learn_task") == 5
    assert set(jobs) <= set(slurm_run.jobs), "Snakemake reported job ids the cluster never saw"
    for job_id in jobs:
        job = slurm_run.jobs[job_id]
        assert job["State"] == "COMPLETED" and job["ExitCode"] == "0:0", job
    assert sorted(rule_of(slurm_run.jobs[j]) for j in jobs) == sorted(remote)


def test_profile_resources_reach_sbatch(slurm_run):
    calls = sbatch_calls(slurm_run)
    learn = [c for c in calls.values() if "--comment rule_learn_task_" in c]
    assert len(learn) == 5
    for call in learn:
        assert "-p debug" in call                 # the partition, from default-resources
        assert "-t 600" in call                   # the profile's set-resources
        assert "--mem 8000" in call               # the rule's own request


def test_gpu_rules_get_one_gpu_and_the_others_none(slurm_run):
    calls = sbatch_calls(slurm_run)
    visible = {}
    for job_id, log in submitted(slurm_run).items():
        job = slurm_run.jobs[job_id]
        prolog = re.findall(rf"{PROLOG_TAG} job={job_id} step=\S+ CUDA_VISIBLE_DEVICES=(\S+)", log.read_text())
        assert prolog, f"no task prolog line in {log}"
        if rule_of(job) in GPU_RULES:
            assert "--gpus=1" in calls[job_id]
            assert "gres/gpu=1" in job["AllocTRES"], job
            # the batch step and the srun step inside it see the same one GPU
            assert len(set(prolog)) == 1 and prolog[0] in {"0", "1"}, f"job {job_id}: {prolog}"
            visible[job_id] = prolog[0]
        else:
            assert "--gpus" not in calls[job_id]
            assert "gres/gpu" not in job["AllocTRES"], job
            assert set(prolog) == {"unset"}, f"job {job_id} saw CUDA_VISIBLE_DEVICES={prolog}"
    # five learn_task jobs, two fake GPUs: the first two ran at once, one on each
    assert set(visible.values()) == {"0", "1"}
    records = slurm_run.workdir.glob("results/runs/cifar10-5/seed0/independent/states/task*.json")
    devices = {json.loads(r.read_text())["device"].split()[0] for r in records}
    # Slurm's GPU indices 0 and 1 name real GPUs where there are any: a job computes on its
    # one visible GPU (cuda:0) if that exists, else device auto falls back to the CPU
    real = torch.cuda.device_count()
    assert devices == ({"cpu"} if real == 0 else {"cuda:0"} if real >= 2 else {"cpu", "cuda:0"})


def test_tables_are_produced_through_slurm(slurm_run):
    res = slurm_run.workdir / "results"
    summary = pd.read_parquet(res / "tables/summary.parquet")
    assert list(summary.run) == ["independent"]
    assert summary.AP.between(0, 1).all() and (summary.AF == 0.0).all()
    assert "| cifar10-5" in (res / "tables/aggregate.md").read_text()
    assert (res / "tables/ap_vs_parameters.png").stat().st_size > 1000
    matrix = pd.read_parquet(res / "runs/cifar10-5/seed0/independent/accuracy_matrix.parquet")
    # independent experts: each task measured only after its own learning
    assert len(matrix) == 15 and matrix.measured.sum() == 5


# ---- issue 28: the paper-scale profile, one allocation per chain ------------------------

PAPER_PROFILE = REPO / "workflow" / "profiles" / "slurm-paper"


@pytest.fixture(scope="module")
def paper_run(cifar10_slice, tmp_path_factory):
    """finetune's 5-task chain through workflow/profiles/slurm-paper, up to its accuracy
    matrix (no features: the chain and the local rules around it)."""
    config = config_for(cifar10_slice)
    config["device"] = "auto"
    config["runs"] = {"finetune": {"method": "finetune"}}
    return run_through_slurm(tmp_path_factory, "slurm_paper", PAPER_PROFILE, config,
                             "results/runs/cifar10-5/seed0/finetune/accuracy_matrix.parquet")


def test_a_chain_is_one_allocation_that_asks_for_its_summed_runtime(paper_run):
    jobs = submitted(paper_run)
    assert len(jobs) == 1, f"{len(jobs)} submissions for one chain"
    (job_id, log), = jobs.items()
    job = paper_run.jobs[job_id]
    assert job["State"] == "COMPLETED" and job["ExitCode"] == "0:0", job
    assert job["Comment"] == "rule_chain_learn_task", job   # the executor's name of group "chain"
    call = next(line for line in paper_run.output.splitlines() if line.startswith("sbatch call: "))
    # 5 learn tasks x the profile's 60 minutes each (Snakemake adds runtime along a chain);
    # the largest memory of one task (not 5 x 8000) and one GPU for the whole chain
    assert "-t 300" in call and "--mem 8000" in call and "--gpus=1" in call, call
    assert "gres/gpu=1" in job["AllocTRES"], job
    # every task still has its own outputs, log and benchmark, written inside the one allocation
    res = paper_run.workdir / "results"
    for task in range(1, 6):
        record = json.loads((res / f"runs/cifar10-5/seed0/finetune/states/task{task}.json").read_text())
        assert record["task"] == task and record["predecessor"] == (task - 1 or None)
        assert (res / f"logs/learn_task/cifar10-5/seed0/finetune/task{task}.log").stat().st_size > 0
        assert (res / f"benchmarks/learn_task/cifar10-5/seed0/finetune/task{task}.tsv").exists()
    prolog = set(re.findall(rf"{PROLOG_TAG} job={job_id} step=\S+ CUDA_VISIBLE_DEVICES=(\S+)", log.read_text()))
    assert len(prolog) == 1, prolog   # the allocation and every task's step see the same one GPU
    matrix = pd.read_parquet(res / "runs/cifar10-5/seed0/finetune/accuracy_matrix.parquet")
    assert len(matrix) == 15 and matrix.measured.all()


# ---- a chain whose allocation runs out of memory ------------------------------------------
# The local cluster enforces no memory, so the method oom-finetune (tests/plugins/oom_finetune.py,
# through the config key method_modules) plays the kill: finetune, but task 3 raises MemoryError
# in an allocation of less than 12000 MB.  learn_task asks for the rule's own 8000 MB x attempt
# (mem_mb_per_attempt; the node has 32000 MB): 8000 fails, 16000 gets through.

OOM_PLUGIN = Path(__file__).resolve().parent / "plugins" / "oom_finetune.py"
OOM_RUN = "results/runs/cifar10-5/seed0/oom"
OOM_SAYS = re.compile(r"oom-finetune: task (\d+) in SLURM job (\d+) with (\d+) MB$", re.M)
OOM_FAILS = "oom-finetune: task 3 needs 12000 MB, the allocation has 8000 MB"


def oom_config(data_root) -> dict:
    config = config_for(data_root)
    config["device"] = "auto"
    config["method_modules"] = [str(OOM_PLUGIN)]
    config["runs"] = {"oom": {"method": "oom-finetune", "oom_finetune": {"task": 3, "min_mem_mb": 12000}}}
    return config


def learned(run) -> dict[str, list[tuple[int, int]]]:
    """SLURM job id -> (task, MB of the allocation) of every task that started in it, in
    order: the lines oom-finetune writes to the allocation's log."""
    out = {}
    for job_id, log in submitted(run).items():
        says = [(int(t), int(j), int(mb)) for t, j, mb in OOM_SAYS.findall(log.read_text())]
        assert all(j == int(job_id) for _, j, _ in says), says
        out[job_id] = [(t, mb) for t, _, mb in says]
    return out


def last_learned_in(run) -> dict[int, str]:
    """Task -> the SLURM job its log (rewritten by every run of the task) was written in."""
    logs = run.workdir / "results/logs/learn_task/cifar10-5/seed0/oom"
    out = {}
    for task in range(1, 6):
        (says,) = OOM_SAYS.findall((logs / f"task{task}.log").read_text())
        assert int(says[0]) == task, says
        out[task] = says[1]
    return out


def assert_matrix_of_a_run_without_failure(run, paper_run) -> None:
    """The accuracy matrix equals finetune's in paper_run: same seeds, no failure."""
    columns = ["after_task", "task", "accuracy", "measured"]
    matrix = pd.read_parquet(run.workdir / OOM_RUN / "accuracy_matrix.parquet")
    expected = pd.read_parquet(paper_run.workdir / "results/runs/cifar10-5/seed0/finetune/accuracy_matrix.parquet")
    assert len(matrix) == 15 and matrix.measured.all()
    pd.testing.assert_frame_equal(matrix[columns], expected[columns])


@pytest.fixture(scope="module")
def retry_run(cifar10_slice, tmp_path_factory):
    """The chain through workflow/profiles/slurm-paper as it is (retries: 2)."""
    return run_through_slurm(tmp_path_factory, "slurm_retry", PAPER_PROFILE, oom_config(cifar10_slice),
                             f"{OOM_RUN}/accuracy_matrix.parquet")


def test_a_retry_learns_the_whole_chain_again_with_twice_the_memory(retry_run, paper_run):
    run = retry_run
    jobs = submitted(run)
    assert len(jobs) == 2, f"{len(jobs)} submissions: {jobs}"
    (first, first_log), (second, _) = jobs.items()
    for job_id in jobs:
        assert run.jobs[job_id]["Comment"] == "rule_chain_learn_task", run.jobs[job_id]
    assert run.jobs[first]["State"] == "FAILED", run.jobs[first]
    assert run.jobs[second]["State"] == "COMPLETED" and run.jobs[second]["ExitCode"] == "0:0", run.jobs[second]
    calls = [line for line in run.output.splitlines() if line.startswith("sbatch call: ")]
    assert len(calls) == 2 and "--mem 8000" in calls[0] and "--mem 16000" in calls[1], calls
    assert all("-t 300" in call for call in calls), calls
    assert "mem=8000M" in run.jobs[first]["AllocTRES"] and "mem=16000M" in run.jobs[second]["AllocTRES"]
    assert "Trying to restart job" in run.output
    assert OOM_FAILS in first_log.read_text()
    # Snakemake submits the failed group job again as it was, all five tasks, and the
    # Snakemake inside the allocation runs them with --force: tasks 1 and 2, finished in
    # the first allocation, are learned again.  (The outputs' mtimes cannot show it:
    # Snakemake touches a group job's outputs after the allocation ends.)
    assert learned(run) == {first: [(1, 8000), (2, 8000), (3, 8000)],
                            second: [(1, 16000), (2, 16000), (3, 16000), (4, 16000), (5, 16000)]}
    assert last_learned_in(run) == {t: second for t in range(1, 6)}
    assert_matrix_of_a_run_without_failure(run, paper_run)


@pytest.fixture(scope="module")
def resume_run(cifar10_slice, tmp_path_factory):
    """The chain given up after its first allocation (--retries 0), then run again with the
    memory task 3 needs, as docs/how-to/slurm.md says for long chains (a --set-resources on
    the command line replaces the profile's, so its runtimes are repeated)."""
    more_memory = ("--set-resources", "learn_task:mem_mb=16000", "learn_task:runtime=60", "search_cell:runtime=60")
    return run_through_slurm(tmp_path_factory, "slurm_resume", PAPER_PROFILE, oom_config(cifar10_slice),
                             f"{OOM_RUN}/accuracy_matrix.parquet", invocations=(("--retries", "0"), more_memory))


def test_a_new_run_goes_on_from_the_task_that_failed(resume_run, paper_run):
    run = resume_run
    assert run.returncodes[0] != 0 and run.returncodes[1] == 0, run.returncodes
    jobs = submitted(run)
    assert len(jobs) == 2, f"{len(jobs)} submissions: {jobs}"
    (first, first_log), (second, _) = jobs.items()
    assert run.jobs[first]["State"] == "FAILED" and run.jobs[second]["State"] == "COMPLETED"
    assert OOM_FAILS in first_log.read_text()
    # keep-incomplete: the failed group job's finished tasks keep their outputs
    assert "Removing output files of failed job" not in run.output
    # the new run's group is the three tasks still to do: their summed runtime, the memory given
    calls = [line for line in run.output.splitlines() if line.startswith("sbatch call: ")]
    assert len(calls) == 2 and "-t 300 --mem 8000" in calls[0] and "-t 180 --mem 16000" in calls[1], calls
    assert learned(run) == {first: [(1, 8000), (2, 8000), (3, 8000)],
                            second: [(3, 16000), (4, 16000), (5, 16000)]}
    assert last_learned_in(run) == {1: first, 2: first, 3: second, 4: second, 5: second}
    assert_matrix_of_a_run_without_failure(run, paper_run)


def test_cluster_is_gone_afterwards(slurm_run):
    cluster = slurm_run.cluster
    assert cluster.processes and not any(cluster.alive().values())
    assert cluster.killed_leftovers == [], "processes outlived the daemons and had to be killed"
    assert cluster.leftover_pids() == []
