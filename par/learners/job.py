"""Learning one task of a chain: the body of a learn-task job."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import torch

from par.learners.strategies import get_strategy
from par.nets.model import MultiHeadModel, count_parameters
from par.streams.tasks import Stream, task_data
from par.training import Batches, TrainConfig, compile_body, evaluate_tasks, fit

log = logging.getLogger(__name__)


@dataclass
class TaskContext:
    """What a strategy's ``bind`` hook may read about the task it learns.

    ``train_ids``: (n,) int64 dataset sample ids (indices into the dataset's train
    split) of the training images, aligned with ``train.images``; ``seed``: the
    job's seed (memory draws are seeded from it, never from the order jobs run in).
    """

    stream: Stream
    images: object
    task: object
    train: Batches
    train_ids: np.ndarray
    config: TrainConfig
    device: torch.device
    seed: int


def sample_ids(images, task, split: str) -> np.ndarray:
    """(n,) int64 dataset sample ids of ``task``'s ``split`` in the order
    :func:`par.streams.tasks.task_data` returns its images: sorted when they are read
    from an ``images.h5`` path (``par.streams.tasks.read_task_pixels``), as listed otherwise."""
    source = images[task.dataset] if isinstance(images, dict) else images
    idx = np.asarray(task.indices(split), dtype=np.int64)
    return np.sort(idx) if isinstance(source, (str, Path)) else idx


def learn_task(assignment: dict, stream: Stream, images, *, predecessor: MultiHeadModel | None,
               body_spec: dict | None, train_config: TrainConfig, strategy_options: dict | None = None,
               device: torch.device = torch.device("cpu"), seed: int = 0,
               eval_chunk: int = 100) -> tuple[MultiHeadModel, dict]:
    """Learn task ``assignment["task"]`` with its strategy, then test the new state.

    Parameters
    ----------
    assignment: ``task, group, strategy, predecessor, group_tasks, genotype_source``
        (see :mod:`par.learners.methods`).
    images: the decoded dataset (:class:`par.streams.datasets.ImageArrays`), or a mapping
        dataset name → decoded dataset or ``images.h5`` path (multi-dataset streams).
    predecessor: the predecessor's model (continued strategies) or None.
    body_spec: spec of a fresh body (allocation, independent) or None.
    strategy_options: keyword arguments per strategy name, e.g.
        ``{"regularize": {"lwf_lambda": 1.0, "lwf_temperature": 2.0}}``.
    eval_chunk: images per forward pass of validation and testing (an execution
        setting, :func:`par.infra.devices.eval_batch_size`; changes no number).
    seed: seeds the new weights (body, head) and a CPU generator for data order
        and augmentation; the same seed gives the same numbers on the CPU.

    A strategy with a ``search`` step (Learn to Grow, MNTDP) runs it first, timed
    inside the job (``search_seconds``, part of ``seconds`` and so of T).

    After training, the strategy's ``after_task`` hook sets ``model.carry``
    (what the next task of the chain needs, e.g. EWC's Fisher), so a saved
    state is all a successor job reads.

    Returns the trained model and a JSON-able record: the assignment, test
    accuracy (fraction) on every task of ``group_tasks``, best validation
    accuracy, parameter count of the model (body + all its heads), seconds,
    and the per-epoch history; for growing methods also ``architecture``,
    ``n_params_added``, ``search``, ``search_seconds``, ``trained_in_search``.
    """
    t = assignment["task"]
    task = stream.task(t)
    strategy = get_strategy(assignment["strategy"], **(strategy_options or {}).get(assignment["strategy"], {}))
    start = time.perf_counter()
    n_before = count_parameters(predecessor) if predecessor is not None else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = strategy.prepare(predecessor, body_spec, t, task.n_classes, device)
    if train_config.compile:
        compile_body(model)
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = task_data(images, task, "train")
    x_val, y_val = task_data(images, task, "val")
    mean, std = stream.normalisation(task)
    train = Batches(x_train, y_train, mean, std, train_config.batch_size, device,
                    shuffle=True, augment=train_config.augment, config=train_config, generator=generator)
    val = Batches(x_val, y_val, mean, std, train_config.eval_batch_size, device)
    log.info("task %d (%s): %d train / %d val images, %d classes, %d parameters", t, assignment["strategy"],
             len(y_train), len(y_val), task.n_classes, count_parameters(model))
    strategy.bind(TaskContext(stream, images, task, train, sample_ids(images, task, "train"), train_config,
                              device, seed))
    search_start = time.perf_counter()
    search = strategy.search(model, t, train, val, train_config)  # LtG, MNTDP (docs/spec.md §10); None elsewhere
    search_seconds = time.perf_counter() - search_start
    searched_fit = search.pop("fit", None) if search is not None else None
    result = searched_fit if searched_fit is not None else fit(model, t, strategy, train, val, train_config,
                                                                          eval_chunk=eval_chunk)
    model.carry = strategy.after_task(model, t, train)
    train_seconds = time.perf_counter() - start
    # Every tested task in one pass through the body (par.training.evaluate_tasks).
    tests = {}
    for u in assignment["group_tasks"]:
        x_test, y_test = task_data(images, stream.task(u), "test")
        tests[u] = Batches(x_test, y_test, *stream.normalisation(stream.task(u)), train_config.eval_batch_size, device)
    test_accuracy = evaluate_tasks(model, tests, eval_chunk, train_config.amp)
    for u, accuracy in test_accuracy.items():
        log.info("after task %d: test accuracy on task %d = %.4f", t, u, accuracy)
    record = {
        **assignment,
        "test_accuracy": {str(u): a for u, a in test_accuracy.items()},
        "val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "n_params": count_parameters(model),
        "n_carried": sum(v.numel() for v in model.carry.values()),
        "n_train": len(y_train),
        "compiled": bool(train_config.compile),
        **strategy.record_fields(model),
        "seconds": time.perf_counter() - start,
        "train_seconds": train_seconds,
        "history": result.history,
    }
    architecture = strategy.architecture(model, t)
    if architecture is not None:  # growing methods (docs/spec.md §10): the task's modules and what they cost
        record.update({"architecture": architecture, "n_params_added": record["n_params"] - n_before,
                       "search": search, "search_seconds": search_seconds,
                       "trained_in_search": searched_fit is not None})
    return model, record
