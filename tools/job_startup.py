"""Start-up of a compute job before it reads anything (issue 28): its script's imports.

    python tools/job_startup.py [--repeat 7] [--script learn_task.py] [--repo OTHER_CHECKOUT]

Runs the import block of ``workflow/scripts/<script>`` (everything above its
``with job_log``) in a fresh interpreter, ``--repeat`` times, and prints each run's
wall and CPU time (user + system, less sensitive to other processes on the
machine), their minima and medians, and the heavy modules the imports pulled in.
Every learn and search job pays this before its first batch (8,736 learn jobs in the
``paper`` target); ``--repo`` times another checkout (e.g. the code before a change)
with the same interpreter.  A bare ``import torch`` is timed the same way for reference.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "torch._dynamo", "sympy", "PIL", "pandas", "pyarrow", "matplotlib", "h5py",
         "tensorboard", "snakemake")
IMPORTS = ("import sys\n"
           "source = open(sys.argv[1]).read().split('with job_log')[0]\n"
           "exec(compile(source, sys.argv[1], 'exec'))\n"
           "print(' '.join(m for m in sys.argv[2:] if m in sys.modules))\n")


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout) of one run of ``cmd`` in ``cwd``
    (``python -c`` puts the working directory first on sys.path: the checkout's own par)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        sys.exit(f"{' '.join(cmd[:3])} failed:\n{result.stderr[-3000:]}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--script", default="learn_task.py", help="a script of workflow/scripts")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose script and par to time")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.repo)}
    script = str(args.repo / "workflow" / "scripts" / args.script)
    print(f"{args.script} imports in {args.repo} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.2f})")
    for label, cmd in (("import torch", [sys.executable, "-c", "import torch"]),
                       (args.script, [sys.executable, "-c", IMPORTS, script, *HEAVY])):
        runs = [timed(cmd, env, args.repo) for _ in range(args.repeat)]
        walls, cpus = [w for w, _, _ in runs], [c for _, c, _ in runs]
        print(f"{label}: wall min {min(walls):.2f} s, median {statistics.median(walls):.2f} s; CPU min "
              f"{min(cpus):.2f} s, median {statistics.median(cpus):.2f} s ({args.repeat} runs)"
              + (f"; imported: {runs[0][2]}" if runs[0][2] else ""))


if __name__ == "__main__":
    main()
