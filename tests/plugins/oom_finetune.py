"""finetune whose task ``task`` runs out of memory in a small SLURM allocation.

A method of one's own (config key ``method_modules``) for tests/test_slurm.py:
the local test cluster does not enforce memory (no cgroups), so this strategy
plays the out-of-memory kill.  Every task logs the allocation it runs in (its
``SLURM_JOB_ID`` and memory in MB, :func:`allocation_mem_mb`) to its own log and
to the allocation's log, which a retry does not overwrite; task ``task`` raises
MemoryError when that memory is below ``min_mem_mb``.  Otherwise it is finetune:
the same seeds, the same numbers.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

from par.learners.methods import Finetune, register_method
from par.learners.options import ConfigSection, Option
from par.learners.strategies import Finetune as FinetuneStrategy, register_strategy

OOM_FINETUNE = ConfigSection("oom_finetune", "finetune that needs min_mem_mb MB of its SLURM allocation on one task", {
    "task": Option(3, "integer", "the task that needs min_mem_mb", minimum=1),
    "min_mem_mb": Option(12000, "integer", "memory (MB) that task needs: MemoryError in a smaller allocation",
                         minimum=0),
})
log = logging.getLogger("par.oom_finetune")


def say(message: str) -> None:
    """To the task's log and to the allocation's (the job's real stderr: the task's is its log)."""
    log.info(message)
    print(message, file=sys.__stderr__, flush=True)


def allocation_mem_mb() -> int:
    """The memory of the SLURM allocation this process runs in, in MB.

    ``SLURM_MEM_PER_NODE`` where Slurm's variable reached the process; else (a task of
    a job run by Snakemake: its slurm-jobstep executor drops every ``SLURM_*`` variable
    but the job's identity before its ``srun``) the job's memory as Slurm reports it."""
    value = os.environ.get("SLURM_MEM_PER_NODE")
    if value is not None:
        return int(value)
    job = os.environ.get("SLURM_JOB_ID")
    if job is None:
        raise RuntimeError("neither SLURM_MEM_PER_NODE nor SLURM_JOB_ID is set: oom-finetune runs only in a SLURM job")
    out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\bMinMemoryNode=(\d+)([MGT])\b", out)
    if match is None:
        raise RuntimeError(f"scontrol shows no MinMemoryNode for job {job}: {out}")
    return int(match.group(1)) * {"M": 1, "G": 1024, "T": 1024 ** 2}[match.group(2)]


@register_method("oom-finetune")
class OomFinetune(Finetune):
    """finetune's chain, learned with strategy oom-finetune."""


@register_strategy("oom-finetune")
class OomFinetuneStrategy(FinetuneStrategy):
    config = OOM_FINETUNE
    config_keys = {"task": "task", "min_mem_mb": "min_mem_mb"}
    keys_without_predecessor = ("task", "min_mem_mb")

    def __init__(self, task: int = OOM_FINETUNE.default("task"), min_mem_mb: int = OOM_FINETUNE.default("min_mem_mb")):
        self.task, self.min_mem_mb = task, min_mem_mb

    def start(self, model, task):
        mem = allocation_mem_mb()
        say(f"oom-finetune: task {task} in SLURM job {os.environ.get('SLURM_JOB_ID')} with {mem} MB")
        if task == self.task and mem < self.min_mem_mb:
            message = f"oom-finetune: task {task} needs {self.min_mem_mb} MB, the allocation has {mem} MB"
            say(message)
            raise MemoryError(message)
        super().start(model, task)
