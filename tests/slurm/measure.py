"""Submissions and wall time of the workflow through a SLURM profile, on the local cluster (issue 28).

    python tests/slurm/measure.py tiny    slurm slurm-paper      # tiny workflow, both profiles
    python tests/slurm/measure.py chain10 slurm slurm-paper      # a 10-task chain, both profiles
    python tests/slurm/measure.py chain10 slurm-paper --kill-snakemake-after 4
    python tests/slurm/measure.py chain10 slurm-paper --scancel-after 4

Starts a throwaway single-node cluster (tests/slurm/local_cluster.py: needs root and
``apt-get install -y slurm-wlm munge``), runs ``all_tables`` on a slice of the real
CIFAR-10 copy (``PAR_SHARED_DATA``, as the tests) once per profile, and prints, per
profile, the ``sbatch`` submissions (counted by the cluster: distinct job ids, an
array counts once) and the wall time of the Snakemake call.  Cases:

- ``tiny``: the tests' tiny workflow (cifar10-5, 5 tasks) with the runs finetune
  (one chain of 5), independent (5 unconnected tasks) and par (search + learn).
- ``chain10``: one finetune run on a 10-task CIFAR-10 stream: a chain of 10.

With ``--kill-snakemake-after K`` the submitting Snakemake is SIGKILLed once task K
of the finetune chain has its record; with ``--scancel-after K`` the allocation
running the chain is cancelled (``scancel``) at that point instead.  Then the
documented resume (docs/how-to/slurm.md) runs, and every data output (features,
records, states, matrices, tables; timing aside) is compared with an
uninterrupted run of the same profile, bit for bit (tests/test_resume.py's checks).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import yaml  # noqa: E402

from conftest import CIFAR10_ARCHIVE, write_cifar10_slice  # noqa: E402
from slurm.local_cluster import LocalSlurm  # noqa: E402
from test_workflow import REPO, config_for  # noqa: E402

PROFILES = REPO / "workflow" / "profiles"
PAIRS = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [0, 2], [1, 3], [4, 6], [5, 7], [8, 0]]


def case_config(case: str, data_root: Path) -> dict:
    config = config_for(data_root)
    config["device"] = "auto"   # the GPU rules request gpu=1: Slurm allocates one of the fake GPUs
    if case == "tiny":
        config["runs"] = {"finetune": {"method": "finetune"}, "independent": {"method": "independent"},
                          "par": {"method": "par"}}
    elif case == "chain10":
        config["benchmarks"] = ["chain10"]
        config["streams"] = {"chain10": {"tasks": [{"dataset": "cifar10", "classes": p} for p in PAIRS]}}
        config["runs"] = {"finetune": {"method": "finetune"}}
    else:
        raise ValueError(f"unknown case {case!r}: tiny or chain10")
    return config


def profile_args(profile: str, cluster: LocalSlurm) -> list[str]:
    """``--profile`` and what a user adapts to their cluster (the partition), plus a 5 s
    first status check (the default 40 s would dominate a tiny run)."""
    settings = yaml.safe_load((PROFILES / profile / "config.yaml").read_text())
    resources = {**settings["default-resources"], "slurm_partition": cluster.partition}
    args = ["--profile", str(PROFILES / profile), "--default-resources",
            *(f"{k}={v}" for k, v in resources.items()), "--slurm-init-seconds-before-status-checks", "5"]
    return args + ([] if cluster.accounting else ["--slurm-status-command", "squeue"])


def submissions(cluster: LocalSlurm, before: set[str]) -> int:
    """sbatch calls since ``before`` (job ids already there): an array job's tasks
    (``<id>_<task>``) count once."""
    return len({j["JobID"].split("_")[0] for j in cluster.jobs()} - before)


def job_ids(cluster: LocalSlurm) -> set[str]:
    return {j["JobID"].split("_")[0] for j in cluster.jobs()}


def record(workdir: Path, config: dict, task: int) -> Path:
    bench = config["benchmarks"][0]
    return workdir / f"results/runs/{bench}/seed0/finetune/states/task{task}.json"


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended before {path} existed:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear in {timeout} s")
        time.sleep(0.2)


def command(workdir: Path, config: dict, profile: str, cluster: LocalSlurm) -> list[str]:
    """The user's command line, with ``config`` written to ``workdir/config.yaml``.  No
    --cores: it would cap the jobs submitted at once (and so the size of an array)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return ["all_tables", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            f"--configfile={workdir / 'config.yaml'}", *profile_args(profile, cluster)]


def run(cluster: LocalSlurm, workdir: Path, config: dict, profile: str) -> dict:
    before = job_ids(cluster)
    env = {**os.environ, "PAR_OFFLINE": "1", **cluster.env}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "snakemake", *command(workdir, config, profile, cluster)],
                            capture_output=True, text=True, env=env, timeout=3600)
    seconds = time.monotonic() - start
    if result.returncode:
        raise RuntimeError(f"{profile}: snakemake failed\n{(result.stdout + result.stderr)[-5000:]}")
    return {"profile": profile, "submissions": submissions(cluster, before), "seconds": seconds}


def interrupted(cluster: LocalSlurm, workdir: Path, config: dict, profile: str, after: int, how: str,
                notice_seconds: float = 300) -> dict:
    """Run, interrupt once task ``after`` of the chain is recorded, resume as documented.
    After a ``scancel``, Snakemake has ``notice_seconds`` (more than the plugin's longest
    pause between status checks, 180 s) to see the failure and retry by itself."""
    before = job_ids(cluster)
    args = command(workdir, config, profile, cluster)
    env = {**os.environ, "PAR_OFFLINE": "1", **cluster.env}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env)
    wait_for(record(workdir, config, after), proc)
    running = cluster.run("squeue", "-h", "-o", "%A %j").stdout.split("\n")
    if how == "kill-snakemake":
        os.killpg(proc.pid, signal.SIGKILL)   # the submitting Snakemake dies; its allocations go on
        proc.wait()
        # docs/how-to/slurm.md: cancel what it left running, then resume
        jobs = cluster.run("squeue", "-h", "-o", "%A").stdout.split()
        if jobs:
            cluster.run("scancel", *jobs)
        while cluster.run("squeue", "-h", "-o", "%A").stdout.split():
            time.sleep(0.5)
        resumed = subprocess.run([sys.executable, "-m", "par.infra.resume", *args], capture_output=True, text=True,
                                 env=env, timeout=3600)
        output = proc.stdout.read() + resumed.stdout + resumed.stderr
        code = resumed.returncode
    else:  # scancel the allocation that runs the chain; Snakemake should retry it
        chain = [line.split()[0] for line in running if line.strip()]
        if not chain:
            raise RuntimeError("no allocation running when the chain's record appeared")
        cluster.run("scancel", *chain)
        try:
            output, _ = proc.communicate(timeout=notice_seconds)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            # Plugin 2.8.0 compares sacct's state with "CANCELLED", but Slurm reports
            # "CANCELLED by <uid>": the job looks alive forever.  docs/how-to/slurm.md:
            # stop Snakemake, resume.
            os.killpg(proc.pid, signal.SIGINT)   # Ctrl-C
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            resumed = subprocess.run([sys.executable, "-m", "par.infra.resume", *args], capture_output=True,
                                     text=True, env=env, timeout=3600)
            output = proc.stdout.read() + resumed.stdout + resumed.stderr
            code = resumed.returncode
            how = f"scancel (not noticed in {notice_seconds:.0f} s: Ctrl-C and resume)"
    seconds = time.monotonic() - start
    proc.stdout.close()
    if code:
        raise RuntimeError(f"{how}: the resumed run failed\n{output[-5000:]}")
    return {"profile": profile, "how": how, "after_task": after, "cancelled": running,
            "submissions": submissions(cluster, before), "seconds": seconds}


def same_outputs(workdir: Path, reference: Path) -> int:
    """Number of data outputs compared; raises AssertionError at the first difference."""
    from test_resume import assert_same_file, compared_files

    files = compared_files(reference)
    assert files == compared_files(workdir), "different output files"
    for rel in files:
        assert_same_file(workdir / rel, reference / rel)
    return len(files)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("case", choices=["tiny", "chain10"])
    p.add_argument("profiles", nargs="+", help="profile folders under workflow/profiles")
    p.add_argument("--kill-snakemake-after", type=int, metavar="K")
    p.add_argument("--scancel-after", type=int, metavar="K")
    p.add_argument("--interrupt", default="slurm-paper", metavar="PROFILE",
                   help="the profile whose run is interrupted (default: %(default)s)")
    p.add_argument("--folder", type=Path, help="where to work (default: a new temporary folder)")
    args = p.parse_args(argv)
    root = args.folder or Path(tempfile.mkdtemp(prefix="par-slurm-measure-"))
    data = write_cifar10_slice(CIFAR10_ARCHIVE, root / "data" / "cifar10-jpg", {"train": 40, "test": 20}).parent
    config = case_config(args.case, data)
    with LocalSlurm(root / "cluster") as cluster:
        for profile in args.profiles:
            reference = root / f"{args.case}-{profile}"
            got = run(cluster, reference, config, profile)
            print(f"{args.case} {profile}: {got['submissions']} sbatch submissions, {got['seconds']:.0f} s", flush=True)
            for how, after in (("kill-snakemake", args.kill_snakemake_after), ("scancel", args.scancel_after)):
                if after is None or profile != args.interrupt:
                    continue
                workdir = root / f"{args.case}-{profile}-{how}"
                got = interrupted(cluster, workdir, config, profile, after, how)
                n = same_outputs(workdir, reference)
                print(f"{args.case} {profile} {got['how']} after task {after} (cancelled {got['cancelled']}): resumed in "
                      f"{got['seconds']:.0f} s with {got['submissions']} sbatch submissions; {n} outputs equal to "
                      f"the uninterrupted run's", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
