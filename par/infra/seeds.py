"""Seeds: one base seed per run, derived per stage and task so that jobs are
independent of scheduling order, and the same seed on CPU gives the same numbers."""
from __future__ import annotations

import random
import zlib

import numpy as np
import torch


def job_seed(seed: int, stage: str, task: int = 0) -> int:
    """A 31-bit seed for one job, from the run's ``seed``, the ``stage`` name and ``task``.

    The run's *name* is deliberately not part of it: two runs that differ only
    in name compute the same numbers.
    """
    return (seed * 1_000_003 + zlib.crc32(stage.encode()) + 7919 * task) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch's global generators (the library itself draws
    from explicit, seeded generators; this covers third-party code)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
