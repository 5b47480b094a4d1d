"""A run killed like a crashed node (SIGKILL to Snakemake's whole process
group) resumes with the one documented command and ends with the tables of an
uninterrupted run, bit for bit on the CPU.

One uninterrupted reference run of a reduced tiny workflow (the ``par`` run
only: plan, cell search, five chained learn-task jobs; 2 epochs), and one run
killed twice: during feature extraction (some feature files written, one job
in flight) and, after resuming with ``python -m par.infra.resume``, during a
learn-task job (past its first epoch, earlier states written).  About two
workflow runs' time.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pandas as pd
import pytest
import torch
import yaml

from par.infra.resume import incomplete_outputs, owners, remove_incomplete_outputs, stale_lock_hint
from test_workflow import REPO, config_for, snakemake

RUN_PATH = "results/runs/cifar10-5/seed0"
FEATURES = "results/features/cifar10-5/seed0"
# Wall-clock columns and keys (seconds, hours, critical_path_hours, ...): the only
# values two runs may not share.  The paper's own figures (paper_hours) are compared.
TIMING = ("seconds", "hours")


def is_timing(name: str) -> bool:
    return any(t in name for t in TIMING) and not name.startswith("paper_")


def resume_config(data_root: Path) -> dict:
    config = config_for(data_root, training={"epochs": 2})
    config["runs"] = {"par": {"method": "par"}}
    return config


def workflow_args(workdir: Path) -> list[str]:
    """The user's command line (what `snakemake()` of test_workflow passes)."""
    return ["all_tables", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            f"--configfile={workdir / 'config.yaml'}", "--cores", "2"]


def start(cmd: list[str]) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (as a shell starts a job)."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PAR_OFFLINE": "1"})


def crash_when(proc: subprocess.Popen, ready, what: str, timeout: float = 600) -> None:
    """SIGKILL ``proc``'s whole process group as soon as ``ready()`` is true."""
    deadline = time.time() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the run ended before {what}:\n{proc.stdout.read()[-3000:]}")
            assert time.time() < deadline, f"never reached {what}"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def resume_refused_while_alive(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "par.infra.resume", *workflow_args(workdir)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PAR_OFFLINE": "1"})


def deterministic(obj):
    """``obj`` (parsed JSON) without wall-clock keys."""
    if isinstance(obj, dict):
        return {k: deterministic(v) for k, v in obj.items() if not is_timing(k)}
    if isinstance(obj, list):
        return [deterministic(v) for v in obj]
    return obj


def read_h5(path: Path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        out["attrs"] = {k: str(v) for k, v in f.attrs.items()}
    return out


def assert_same_file(path: Path, reference: Path) -> None:
    """``path`` holds what ``reference`` holds, exactly, timing aside."""
    if path.suffix == ".parquet":
        frame, expected = pd.read_parquet(path), pd.read_parquet(reference)
        keep = [c for c in expected.columns if not is_timing(c)]
        assert list(frame.columns) == list(expected.columns), path
        pd.testing.assert_frame_equal(frame[keep], expected[keep], check_exact=True, obj=str(path))
    elif path.suffix == ".json":
        assert deterministic(json.loads(path.read_text())) == deterministic(json.loads(reference.read_text())), path
    elif path.suffix == ".h5":
        got, expected = read_h5(path), read_h5(reference)
        assert got.keys() == expected.keys(), path
        for key in expected:
            if key == "attrs":
                assert got[key] == expected[key], path
            else:
                assert (got[key] == expected[key]).all() and got[key].dtype == expected[key].dtype, f"{path}: {key}"
    elif path.suffix == ".pt":
        got, expected = torch.load(path, weights_only=False), torch.load(reference, weights_only=False)
        assert_same_tensors(got, expected, str(path))
    else:
        raise AssertionError(f"no comparison for {path}")


def assert_same_tensors(got, expected, where: str) -> None:
    if isinstance(expected, torch.Tensor):
        assert torch.equal(got, expected), where
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys(), where
        for key in expected:
            assert_same_tensors(got[key], expected[key], f"{where}[{key}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same_tensors(g, e, f"{where}[{i}]")
    else:
        assert got == expected, where


def compared_files(workdir: Path) -> list[Path]:
    """Every data output of the run, relative to ``workdir`` (no logs, figures, benchmarks)."""
    res = workdir / "results"
    files = [*res.glob("features/**/*.h5"), *res.glob("relatedness/**/*.parquet"), *res.glob("runs/**/*.json"),
             *res.glob("runs/**/*.pt"), *res.glob("runs/**/*.parquet"), *res.glob("tables/*.parquet")]
    return sorted(p.relative_to(workdir) for p in files if not p.name.startswith("."))


@pytest.fixture(scope="module")
def reference(cifar10_slice, tmp_path_factory):
    """The uninterrupted run: (workdir, config)."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    config = resume_config(cifar10_slice)
    result = snakemake(workdir, config, "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config


@pytest.mark.workflow
def test_run_killed_twice_resumes_to_the_uninterrupted_tables(reference, tmp_path):
    ref_dir, config = reference
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    args = workflow_args(workdir)

    # crash 1: during feature extraction, with some feature files written and a job in flight
    def extracting():
        done = list((workdir / FEATURES).glob("task*.h5"))
        running = [f for f in incomplete_outputs(workdir) if f.startswith(f"{FEATURES}/task")]
        return 1 <= len(done) and running
    proc = start([sys.executable, "-m", "snakemake", *args])
    crash_when(proc, extracting, "feature extraction")
    in_flight = {f for f in incomplete_outputs(workdir) if f.startswith(FEATURES)}
    assert in_flight and len(list((workdir / FEATURES).glob("task*.h5"))) < 5
    assert list((workdir / ".snakemake" / "locks").glob("*.lock")), "a SIGKILL leaves Snakemake's lock"
    trusted_after_crash(workdir, ref_dir)

    # the plain command stops at the stale lock, and the message names the command that resumes
    again = snakemake(workdir, config, "all_tables")
    assert again.returncode != 0
    message = again.stdout + again.stderr
    assert "Directory cannot be locked" in message and "--unlock" in message
    assert "no longer exists" in message and "python -m par.infra.resume" in message

    # resume, then crash 2: during a learn-task job, past its first epoch, with earlier states written
    def learning():
        states = list((workdir / RUN_PATH).glob("*/states/task*.json"))
        running = [f for f in incomplete_outputs(workdir) if "/states/task" in f and f.endswith(".pt")
                   and not (workdir / f.replace(".pt", ".json")).exists()]
        logs = [workdir / f.replace(RUN_PATH, "results/logs/learn_task/cifar10-5/seed0").replace("/states/", "/")
                .replace(".pt", ".log") for f in running]
        return len(states) >= 2 and any(log.exists() and "epoch 1/2" in log.read_text() for log in logs)
    proc = start([sys.executable, "-m", "par.infra.resume", *args])
    # while it runs (par.infra.resume execs Snakemake), resuming is refused: the recorded Snakemake is alive
    deadline = time.time() + 300
    while not any(o.alive for o in owners(workdir)):
        assert proc.poll() is None and time.time() < deadline, "the resumed run never started its jobs"
        time.sleep(0.05)
    refused = resume_refused_while_alive(workdir)
    assert refused.returncode == 3 and "still running" in refused.stderr, refused.stderr
    crash_when(proc, learning, "a learn-task job")
    assert any("/states/" in f for f in incomplete_outputs(workdir))
    trusted_after_crash(workdir, ref_dir)

    # the documented command, once more, runs to the end
    resumed = subprocess.run([sys.executable, "-m", "par.infra.resume", *args], capture_output=True, text=True,
                             timeout=900, env={**os.environ, "PAR_OFFLINE": "1"})
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "Removing it with snakemake --unlock" in resumed.stderr
    assert not incomplete_outputs(workdir)
    assert not list((workdir / ".snakemake" / "locks").glob("*.lock"))
    assert not list((workdir / ".snakemake" / "par-owners").glob("*.json"))

    files = compared_files(workdir)
    assert files == compared_files(ref_dir)
    assert {"results/tables/summary.parquet", f"{RUN_PATH}/par/plan.json", f"{RUN_PATH}/par/metrics.parquet",
            f"{RUN_PATH}/par/accuracy_matrix.parquet", f"{RUN_PATH}/par/cells/task1.json"} <= {str(f) for f in files}
    for f in files:
        assert_same_file(workdir / f, ref_dir / f)
    dry = snakemake(workdir, config, "all_tables", "--dry-run")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


def trusted_after_crash(workdir: Path, ref_dir: Path) -> None:
    """Every output a killed run leaves unmarked is complete and equal to the
    uninterrupted run's; only Snakemake's incomplete markers point at others."""
    marked = incomplete_outputs(workdir)
    for f in compared_files(workdir):
        if str(f) not in marked:
            assert_same_file(workdir / f, ref_dir / f)


# ---- par.infra.resume alone: a stand-in owner process, no workflow ----------------------------

OWNER = ("import sys, time; from par.infra.resume import record_owner; "
         "record_owner(sys.argv[1], ['snakemake', 'all_tables']); print('recorded', flush=True); "
         "time.sleep(float(sys.argv[2]))")


def start_owner(workdir: Path, seconds: float) -> subprocess.Popen:
    """A process that records itself as the Snakemake of ``workdir``, as onstart does."""
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(workdir), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "recorded"
    return proc


def lock(workdir: Path) -> Path:
    """A lock as Snakemake writes it."""
    path = workdir / ".snakemake" / "locks" / "0.output.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("results/tables/summary.parquet\n")
    return path


def par_resume(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PAR_RESUMING"}
    return subprocess.run([sys.executable, "-m", "par.infra.resume", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_a_live_snakemake_is_told_from_a_killed_one(tmp_path, monkeypatch):
    monkeypatch.delenv("PAR_RESUMING", raising=False)
    lock_file = lock(tmp_path)  # Snakemake takes its lock, then its onstart records it
    proc = start_owner(tmp_path, 120)
    try:
        [owner] = owners(tmp_path)
        assert owner.alive and owner.pid == proc.pid and owner.command == "snakemake all_tables"
        assert stale_lock_hint(tmp_path) is None
        refused = par_resume("all_tables", "--directory", str(tmp_path), "--cores", "1")
        assert refused.returncode == 3 and "still running" in refused.stderr and f"pid {proc.pid}" in refused.stderr
        assert lock_file.exists() and owner.path.exists()
    finally:
        proc.kill()  # SIGKILL: no atexit, the record stays, the kernel drops its flock
        proc.wait()
    [owner] = owners(tmp_path)
    assert not owner.alive and owner.pid == proc.pid
    hint = stale_lock_hint(tmp_path, ["snakemake", "all_tables", "--cores", "2"])
    assert f"pid {proc.pid}" in hint and "python -m par.infra.resume all_tables --cores 2" in hint

    # a lock newer than every record: a Snakemake that has not reached onstart yet, maybe alive
    later = owner.path.stat().st_mtime_ns + 1_000_000_000
    os.utime(lock_file, ns=(later, later))
    assert stale_lock_hint(tmp_path) is None
    refused = par_resume("all_tables", "-d", str(tmp_path))
    assert refused.returncode == 3 and "no record" in refused.stderr and lock_file.exists()


def test_an_owner_that_exits_normally_removes_its_record(tmp_path):
    start_owner(tmp_path, 0).wait()
    assert owners(tmp_path) == [] and not list((tmp_path / ".snakemake" / "par-owners").iterdir())


def test_a_lock_without_an_owner_record_is_left_to_the_user(tmp_path):
    lock_file = lock(tmp_path)
    assert stale_lock_hint(tmp_path) is None
    refused = par_resume("all_tables", f"--directory={tmp_path}")
    assert refused.returncode == 3 and lock_file.exists()
    assert f"snakemake --unlock all_tables --directory={tmp_path}" in refused.stderr


def test_only_outputs_marked_incomplete_are_removed(tmp_path):
    """Snakemake's markers: the base64 of the output's path, long names split
    into @-prefixed folders; a marked output is deleted, nothing else is."""
    import base64

    marked = ["results/runs/b/seed0/par/states/task2.pt", "results/missing.h5", "results/" + "/".join(["x" * 100] * 3) + ".json"]
    kept = tmp_path / "results/runs/b/seed0/par/states/task1.pt"
    for name in [*marked, str(kept.relative_to(tmp_path))]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if name != "results/missing.h5":
            (tmp_path / name).write_bytes(b"complete")
    for name in marked:
        encoded = base64.urlsafe_b64encode(name.encode()).decode()
        parts = [encoded[i:i + 254] for i in range(0, len(encoded), 254)]
        marker = tmp_path.joinpath(".snakemake", "incomplete", *["@" + p for p in parts[:-1]], parts[-1])
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text('{"external_jobid": null}')
    assert incomplete_outputs(tmp_path) == sorted(marked)
    assert remove_incomplete_outputs(tmp_path) == sorted(set(marked) - {"results/missing.h5"})
    assert kept.exists() and not any((tmp_path / name).exists() for name in marked)
