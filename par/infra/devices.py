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
from typing import ContextManager, Iterator

import torch

log = logging.getLogger(__name__)


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "par-gpu-slots"


@contextlib.contextmanager
def acquire_device(preference: str = "auto", *, slots_per_gpu: int = 1, lock_dir: str | Path | None = None,
                   poll_seconds: float = 2.0, cudnn_benchmark: bool = False) -> Iterator[torch.device]:
    """Yield the device for this job: ``cpu``, or ``cuda:i`` with a claimed slot.

    preference: ``auto`` (a GPU when one is visible, else the CPU), ``cpu``, or
    ``cuda`` (raise RuntimeError when no GPU is visible).  Waits, polling,
    while every slot is taken.  ``cudnn_benchmark`` (config key of the same name)
    sets ``torch.backends.cudnn.benchmark`` for a CUDA job: cuDNN then times the
    convolution algorithms on the first batches and keeps the fastest, which may
    differ between runs and GPUs and so change the numbers in the last digits
    (off by default: PyTorch's deterministic choice, today's numbers).
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {preference!r}")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        yield torch.device("cpu")
        return
    if not torch.cuda.is_available():
        raise RuntimeError("device: cuda was requested but torch sees no GPU "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
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


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_cpu_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 16 << 30,
                       top_pad: int = 256 << 20) -> bool:
    """Keep freed activation buffers in the process heap instead of returning them to the OS.

    PyTorch's CPU allocator is plain ``posix_memalign``.  With glibc's defaults a
    buffer above the (dynamic) mmap threshold is mmapped and unmapped on every
    allocation, and heap memory above the trim threshold goes back to the OS, so
    every convolution and BatchNorm output of a training step or an evaluation
    batch is page-faulted and zero-filled again.  Fixing the thresholds (the same
    as ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184
    MALLOC_TOP_PAD_=268435456``) changes only where memory comes from, never a
    number: measured 1.39x less CPU time per expert training step (C = 16, L = 3,
    batch 64) and 1.33x per light-ResNet18 step (README, Speed).  Costs: the
    job's resident memory stays at its peak.  Returns False (and changes nothing)
    where the C library has no ``mallopt`` (not glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = all(mallopt(key, value) == 1 for key, value in ((_M_MMAP_THRESHOLD, mmap_threshold),
                                                         (_M_TRIM_THRESHOLD, trim_threshold),
                                                         (_M_TOP_PAD, top_pad)))
    if ok:
        log.info("CPU allocator: mmap threshold %d MiB, trim threshold %d MiB", mmap_threshold >> 20,
                 trim_threshold >> 20)
    return ok


def eval_batch_size(device: torch.device, sizes: dict[str, int] | None = None) -> int:
    """Images per forward pass in evaluation on ``device`` (config key ``eval_batch_size``,
    ``{cpu: 100, cuda: 500}`` by default).  An execution setting: per-image logits
    are the same at any batch size (tests/test_speed.py), so it is not a param."""
    sizes = {"cpu": 100, "cuda": 500, **(sizes or {})}
    return int(sizes[device.type])


def describe(device: torch.device) -> str:
    """'cpu (N threads)' or the GPU's name."""
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def job_device(config: dict, threads: int, *, tune_allocator: bool = True) -> ContextManager[torch.device]:
    """The compute set-up every torch job of the workflow starts with: torch uses
    ``threads`` CPU threads (the rule's ``threads``), the CPU allocator is tuned
    (:func:`tune_cpu_allocator`, unless ``tune_allocator`` is False), both at once; returns
    the not yet entered :func:`acquire_device` context for the config keys ``device``,
    ``gpu_slots_per_device`` and ``cudnn_benchmark``, so a job reads its inputs before it
    claims a GPU slot.  Raises KeyError naming a missing config key, ValueError for a
    bad ``device`` (when entered)."""
    torch.set_num_threads(threads)
    if tune_allocator:
        tune_cpu_allocator()  # where memory comes from, not a number
    return acquire_device(config["device"], slots_per_gpu=config["gpu_slots_per_device"],
                          cudnn_benchmark=config["cudnn_benchmark"])
