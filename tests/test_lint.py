"""`snakemake --lint` finds nothing to say about the workflow (rules in the rule
files, functions in common.smk, a log for every rule, no absolute paths)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_workflow_lints_clean(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), f"--configfile={REPO / 'config' / 'demo.yaml'}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PAR_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr
