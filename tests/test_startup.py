"""Parsing the workflow imports neither torch, torchvision nor h5py.

Every snakemake call parses the workflow: dry-runs, the scheduler, and each
job submitted to SLURM.  Importing torch there costs seconds each time; only
the jobs that compute import it, in their own processes.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Runs snakemake in this process and prints, at exit, which heavy modules it imported.
SNAKEMAKE_WATCHING_IMPORTS = (
    "import atexit, sys\n"
    "heavy = ('torch', 'torchvision', 'h5py')\n"
    "atexit.register(lambda: print('HEAVY MODULES:', sorted(m for m in heavy if m in sys.modules)))\n"
    "from snakemake.cli import main\n"
    "sys.argv[0] = 'snakemake'\n"
    "main()\n"
)


def test_dry_run_of_the_paper_config_imports_no_torch(tmp_path):
    cmd = [sys.executable, "-c", SNAKEMAKE_WATCHING_IMPORTS, "all_tables", "--dry-run", "--snakefile",
           str(REPO / "Snakefile"), "--directory", str(tmp_path), f"--configfile={REPO / 'config/config.yaml'}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PAR_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    # the whole DAG up to the plan checkpoint was built: 2 benchmarks (5 + 10 tasks), 3 seeds,
    # 6 baseline, 3 memory/mask (er, agem, hat) and 4 growing runs learning every task of
    # cifar10-5 and cifar100-10 for 3 seeds: 13 x 45 (PAR's learn jobs wait for the plan)
    assert any(line.split() == ["learn_task", "585"] for line in result.stdout.splitlines()), result.stdout[-3000:]
    assert "HEAVY MODULES: []" in result.stdout


def test_the_watcher_sees_torch_when_it_is_imported(tmp_path):
    """The check above could not pass by accident: the same watcher reports torch
    when the process imports it (here through a workflow that imports par.nets.model)."""
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text("import par.nets.model\n\nrule all:\n    output: 'x'\n    shell: 'touch {output}'\n")
    cmd = [sys.executable, "-c", SNAKEMAKE_WATCHING_IMPORTS, "--dry-run", "--snakefile", str(snakefile),
           "--directory", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY MODULES: ['torch', 'torchvision']" in result.stdout
