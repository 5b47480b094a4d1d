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
    assert "HEAVY MODULES: ['torch']" in result.stdout


# ---- issue 28: what a learn job imports before its first batch -------------------------

LEARN_JOB_IMPORTS = ("import sys\n"
                     "source = open(sys.argv[1]).read().split('with job_log')[0]  # the script's imports\n"
                     "exec(compile(source, sys.argv[1], 'exec'))\n"
                     "print('IMPORTED:', sorted(m for m in sys.argv[2:] if m in sys.modules))\n")
NOT_FOR_LEARNING = ("torchvision", "torch._dynamo", "sympy", "PIL", "pandas", "pyarrow", "matplotlib", "scipy",
                    "snakemake", "tensorboard", "torch.utils.tensorboard")


def test_learn_and_search_jobs_import_torch_and_nothing_they_do_not_use():
    """Every learn and search job pays its imports (8,736 learn jobs in the paper target):
    torchvision (through its ops, torch._dynamo and sympy), pandas, matplotlib, the
    TensorBoard writer (imported only where config tensorboard is on) stay out."""
    for script in ("learn_task.py", "search_cell.py"):
        cmd = [sys.executable, "-c", LEARN_JOB_IMPORTS, str(REPO / "workflow/scripts" / script), "torch",
               *NOT_FOR_LEARNING]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "IMPORTED: ['torch']" in result.stdout, (script, result.stdout)


def test_the_basic_block_is_torchvisions():
    """par.nets.blocks.BasicBlock (written out to keep torchvision out of the learn jobs) is
    torchvision's: same seed, same weights; same state_dict keys; same outputs and
    gradients, with and without a downsample, in training and eval mode."""
    import torch
    from torch import nn
    from torchvision.models.resnet import BasicBlock as Reference

    from par.nets.blocks import BasicBlock

    def down(width, stride):
        return nn.Sequential(nn.Conv2d(width, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))

    for stride in (1, 2):
        torch.manual_seed(3)
        ours = BasicBlock(8, 8, stride, down(8, stride) if stride != 1 else None)
        torch.manual_seed(3)
        theirs = Reference(8, 8, stride, down(8, stride) if stride != 1 else None)
        a, b = ours.state_dict(), theirs.state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
        x = torch.randn(4, 8, 12, 12)
        for train in (True, False):
            ours.train(train), theirs.train(train)
            xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
            ya, yb = ours(xa), theirs(xb)
            assert ya.shape == (4, 8, 12 // stride, 12 // stride) and torch.equal(ya, yb)
            ya.square().sum().backward(), yb.square().sum().backward()
            assert torch.equal(xa.grad, xb.grad)
            assert torch.equal(ours.conv1.weight.grad, theirs.conv1.weight.grad)
