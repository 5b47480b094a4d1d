"""Which device a job computes on.

Snakemake's ``--resources gpu=N`` only caps how many GPU jobs run at once; it
does not pick a device.  A job therefore claims a free *GPU slot* itself: a
file lock per (device index, slot), held for the job's lifetime, so that
concurrent jobs spread over the GPUs.  ``slots_per_gpu`` > 1 lets several
small jobs share one large GPU.  Under SLURM the scheduler has already set
``CUDA_VISIBLE_DEVICES`` to the job's GPU and no lock is taken.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch

log = logging.getLogger(__name__)


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "par-gpu-slots"


@contextlib.contextmanager
def acquire_device(preference: str = "auto", *, slots_per_gpu: int = 1, lock_dir: str | Path | None = None,
                   poll_seconds: float = 2.0) -> Iterator[torch.device]:
    """Yield the device for this job: ``cpu``, or ``cuda:i`` with a claimed slot.

    preference: ``auto`` (a GPU when one is visible, else the CPU), ``cpu``, or
    ``cuda`` (raise RuntimeError when no GPU is visible).  Waits, polling,
    while every slot is taken.
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {preference!r}")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        yield torch.device("cpu")
        return
    if not torch.cuda.is_available():
        raise RuntimeError("device: cuda was requested but torch sees no GPU "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    if "SLURM_JOB_ID" in os.environ:
        yield torch.device("cuda:0")
        return
    lock_dir = Path(lock_dir or default_lock_dir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    n_gpus = torch.cuda.device_count()
    waited = False
    while True:
        for slot in range(slots_per_gpu):
            for gpu in range(n_gpus):
                handle = open(lock_dir / f"gpu{gpu}-slot{slot}.lock", "w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                try:
                    torch.cuda.set_device(gpu)
                    log.info("claimed GPU %d slot %d (%s)", gpu, slot, torch.cuda.get_device_name(gpu))
                    yield torch.device(f"cuda:{gpu}")
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    handle.close()
                return
        if not waited:
            log.info("all %d GPU slots are busy; waiting", n_gpus * slots_per_gpu)
            waited = True
        time.sleep(poll_seconds)


def describe(device: torch.device) -> str:
    """'cpu (N threads)' or the GPU's name."""
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"
