"""Start-up cost of the workflow: wall time of a dry-run.

    python tools/startup.py [--repeat 5] [--configfile config/config.yaml] [--snakemake PATH]

Runs ``snakemake -n all_tables`` (the command a user types first; a dry-run
does not run the onstart data check) from the repository root, ``--repeat``
times, and prints each wall time, the minimum and the median.  Every
snakemake call pays this: dry-runs, the scheduler, and every job submitted to
SLURM.  Then one more dry-run reports whether parsing imported torch or
torchvision (it must not; tests/test_startup.py checks it).  Other processes
on the machine inflate the times: compare minima.  ``--snakemake`` times the
``snakemake`` of another environment (e.g. one installed with ``pip install -e .``,
without the SLURM plugin, which Snakemake imports in every call when installed).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from test_startup import SNAKEMAKE_WATCHING_IMPORTS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="dry-runs to time")
    parser.add_argument("--configfile", default="config/config.yaml", help="relative to the repository root")
    parser.add_argument("--target", default="all_tables")
    parser.add_argument("--snakemake", default=shutil.which("snakemake") or "snakemake",
                        help="snakemake executable to time (default: the one on PATH)")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="checkout to time (e.g. another branch's worktree, to compare before/after)")
    args = parser.parse_args()
    snakemake = args.snakemake
    python = str(Path(snakemake).with_name("python"))
    cmd = [snakemake, "-n", args.target, f"--configfile={args.configfile}"]
    pythonpath = os.pathsep.join(filter(None, [str(args.repo), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PAR_OFFLINE": "1", "PYTHONPATH": pythonpath}
    plugin = subprocess.run([python, "-c", "import importlib.util as u; "
                             "print(u.find_spec('snakemake_executor_plugin_slurm') is not None)"],
                            capture_output=True, text=True).stdout.strip()
    print(f"$ {' '.join(cmd)}   (in {args.repo}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"SLURM executor plugin installed: {plugin or 'unknown'})")
    seconds, cpu_seconds = [], []
    for i in range(args.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=args.repo, capture_output=True, text=True, env=env)
        seconds.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_seconds.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if result.returncode != 0:
            sys.exit(f"dry-run failed:\n{result.stderr[-3000:]}")
        print(f"run {i + 1}: {seconds[-1]:.2f} s wall, {cpu_seconds[-1]:.2f} s CPU")
    print(f"wall: min {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s; CPU (user + system, "
          f"less sensitive to other processes): min {min(cpu_seconds):.2f} s, median "
          f"{statistics.median(cpu_seconds):.2f} s over {len(seconds)} dry-runs")
    watched = subprocess.run([python, "-c", SNAKEMAKE_WATCHING_IMPORTS, *cmd[1:]], cwd=args.repo,
                             capture_output=True, text=True, env=env)
    print(next((line for line in watched.stdout.splitlines() if line.startswith("HEAVY MODULES")),
               "no import report: " + watched.stderr[-500:]), "(imported while parsing and dry-running)")


if __name__ == "__main__":
    main()
