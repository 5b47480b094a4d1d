"""Learning one task of a chain: the body of a learn-task job, in four named steps.

:func:`learn_task` runs :func:`set_up_learning` (the strategy, the model, the
task's batches), :func:`search_or_fit` (the strategy's search step, then the
shared training loop unless the search already trained the network),
:func:`evaluate_group` (test accuracy on every task of the group) and
:func:`task_record` (the JSON-able record of the job).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch

from par.learners.context import SearchResult, TaskContext
from par.learners.strategies import Strategy, get_strategy
from par.nets.model import MultiHeadModel, compile_body, count_parameters
from par.streams.tasks import Stream, sample_ids, task_data
from par.training import Batches, FitResult, TrainConfig, evaluate_tasks, fit

log = logging.getLogger(__name__)


@dataclass
class LearningSetup:
    """A task ready to learn: its number, the strategy (bound to the task), the model
    to train, the training and validation batches, the parameter count before the
    task (0 without a predecessor) and the job's start (``time.perf_counter()`` seconds)."""

    number: int
    strategy: Strategy
    model: MultiHeadModel
    train: Batches
    val: Batches
    n_params_before: int
    start: float


@dataclass
class LearnedTask:
    """What :func:`search_or_fit` did: the training loop's result, the search step's
    result (None: no search), the search's and the whole learning's seconds
    (from the job's start, so the search is part of it)."""

    fit: FitResult
    search: SearchResult | None
    search_seconds: float
    train_seconds: float


def set_up_learning(assignment: dict, stream: Stream, images, predecessor: MultiHeadModel | None,
                    body_spec: dict | None, train_config: TrainConfig, strategy_options: dict | None,
                    device: torch.device, seed: int) -> LearningSetup:
    """The strategy named by ``assignment["strategy"]`` (with its options), the model
    it prepares (new weights seeded by ``seed``, CPU RNG only), the task's training
    batches (shuffled and augmented by a CPU generator seeded by ``seed``) and
    validation batches, and the strategy bound to them (:class:`TaskContext`).

    Raises KeyError for an unknown strategy, ValueError when the strategy needs a
    predecessor or body spec it does not get."""
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
    return LearningSetup(t, strategy, model, train, val, n_before, start)


def search_or_fit(setup: LearningSetup, train_config: TrainConfig, eval_chunk: int) -> LearnedTask:
    """Run the strategy's search step (LtG, MNTDP; docs/spec.md §9; timed), then the
    shared loop (:func:`par.training.fit`) unless the search handed back the network
    it trained, then the strategy's ``after_task`` hook, which sets ``model.carry``
    (what the next task of the chain needs, e.g. EWC's Fisher)."""
    p = setup
    search_start = time.perf_counter()
    search = p.strategy.search(p.model, p.number, p.train, p.val, train_config)
    search_seconds = time.perf_counter() - search_start
    if search is not None and search.fit is not None:
        result = search.fit
    else:
        result = fit(p.model, p.number, p.strategy, p.train, p.val, train_config, eval_chunk=eval_chunk)
    p.model.carry = p.strategy.after_task(p.model, p.number, p.train)
    return LearnedTask(result, search, search_seconds, time.perf_counter() - p.start)


def evaluate_group(model: MultiHeadModel, stream: Stream, images, tasks: list[int], train_config: TrainConfig,
               device: torch.device, eval_chunk: int) -> dict[int, float]:
    """Test accuracy (fraction) of ``model`` on each of ``tasks``, every tested task in
    one pass through the body (:func:`par.training.evaluate_tasks`)."""
    tests = {}
    for u in tasks:
        x_test, y_test = task_data(images, stream.task(u), "test")
        tests[u] = Batches(x_test, y_test, *stream.normalisation(stream.task(u)), train_config.eval_batch_size, device)
    return evaluate_tasks(model, tests, eval_chunk, train_config.amp)


def task_record(assignment: dict, setup: LearningSetup, learned: LearnedTask, test_accuracy: dict[int, float],
                train_config: TrainConfig) -> dict:
    """The job's JSON-able record: the assignment, ``test_accuracy`` (fraction, by task
    number as a string), the best validation accuracy, ``n_params`` (body + all its
    heads), ``n_carried``, ``seconds`` (the whole job), ``train_seconds``, the
    per-epoch ``history`` and the strategy's own fields; for growing methods also
    ``architecture``, ``n_params_added``, ``search`` (the search's record or None),
    ``search_seconds`` and ``trained_in_search``."""
    p, result, model = setup, learned.fit, setup.model
    record = {
        **assignment,
        "test_accuracy": {str(u): a for u, a in test_accuracy.items()},
        "val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "n_params": count_parameters(model),
        "n_carried": sum(v.numel() for v in model.carry.values()),
        "n_train": len(p.train.labels),
        "compiled": bool(train_config.compile),
        **p.strategy.record_fields(model),
        "seconds": time.perf_counter() - p.start,
        "train_seconds": learned.train_seconds,
        "history": result.history,
    }
    architecture = p.strategy.architecture(model, p.number)
    if architecture is not None:  # growing methods (docs/spec.md §9): the task's modules and what they cost
        search = learned.search
        record.update({"architecture": architecture, "n_params_added": record["n_params"] - p.n_params_before,
                       "search": search.record if search is not None else None,
                       "search_seconds": learned.search_seconds,
                       "trained_in_search": search is not None and search.fit is not None})
    return record


def learn_task(assignment: dict, stream: Stream, images, *, predecessor: MultiHeadModel | None,
               body_spec: dict | None, train_config: TrainConfig, strategy_options: dict | None = None,
               device: torch.device = torch.device("cpu"), seed: int = 0,
               eval_chunk: int = 100) -> tuple[MultiHeadModel, dict]:
    """Learn task ``assignment["task"]`` with its strategy, then test the new state.

    ``assignment``: ``task, group, strategy, predecessor, group_tasks, genotype_source``
    (:mod:`par.learners.methods`).  ``images``: the decoded dataset, or a mapping dataset
    name → decoded dataset or ``images.h5`` path.  ``predecessor``: the predecessor's model
    (continued strategies) or None; ``body_spec``: spec of a fresh body (allocation,
    independent) or None.  ``strategy_options``: keyword arguments per strategy name, e.g.
    ``{"regularize": {"lwf_lambda": 1.0}}``.  ``seed`` seeds the new weights, the data order
    and augmentation (the same seed gives the same numbers on the CPU).  ``eval_chunk``:
    images per forward pass of validation and testing (changes no number).

    Returns the trained model (``model.carry`` set, so a saved state is all a successor
    job reads) and its record (:func:`task_record`).  Raises as :func:`set_up_learning`.
    """
    setup = set_up_learning(assignment, stream, images, predecessor, body_spec, train_config, strategy_options,
                            device, seed)
    learned = search_or_fit(setup, train_config, eval_chunk)
    test_accuracy = evaluate_group(setup.model, stream, images, assignment["group_tasks"], train_config, device,
                                   eval_chunk)
    for u, accuracy in test_accuracy.items():
        log.info("after task %d: test accuracy on task %d = %.4f", setup.number, u, accuracy)
    return setup.model, task_record(assignment, setup, learned, test_accuracy, train_config)
