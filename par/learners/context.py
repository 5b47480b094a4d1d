"""What passes between the learn-task job and a strategy: the task a strategy's
``bind`` hook reads (:class:`TaskContext`) and what its ``search`` returns
(:class:`SearchResult`).

Below both the strategies and the learn-task job (:mod:`par.learners.job`) that
builds it, so a strategy never imports the job that calls it.  Importing this
module does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

    from par.streams.tasks import Stream, Task
    from par.training import Batches, FitResult, TrainConfig


@dataclass
class TaskContext:
    """What a strategy's ``bind`` hook may read about the task it learns.

    ``images``: the decoded dataset or a mapping dataset name → decoded dataset or
    ``images.h5`` path (as :func:`par.streams.tasks.task_data` takes);
    ``train``: the task's training batches; ``train_ids``: (n,) int64 dataset
    sample ids (indices into the dataset's train split) of the training images,
    aligned with ``train.images`` (:func:`par.streams.tasks.sample_ids`);
    ``seed``: the job's seed (memory draws are seeded from it, never from the
    order jobs run in).
    """

    stream: Stream
    images: object
    task: Task
    train: Batches
    train_ids: np.ndarray
    config: TrainConfig
    device: torch.device
    seed: int


@dataclass
class SearchResult:
    """What a strategy's ``search`` step (Learn to Grow, MNTDP; docs/spec.md §9) hands
    back to the learn-task job.

    ``record``: JSON-able, stored as the record's ``search`` field (e.g. LtG's α
    softmax per layer, MNTDP's k-NN accuracy per earlier task).  ``fit``: the
    :class:`par.training.FitResult` of the network the search already trained
    (MNTDP: the kept candidate), so the job does not train it again; None when
    the searched network still has to be trained by the shared loop (LtG).
    """

    record: dict
    fit: FitResult | None = None
