"""Shared fixtures: a small slice of the real CIFAR-10 copy in ../shared/data."""
from __future__ import annotations

import dataclasses
import importlib
import os
import tarfile
from pathlib import Path

import pytest

from par.learners.discovery import BUILTIN_MODULES

# Every built-in method and strategy registered, as the workflow's discovery registers them
# (a module registers on import); tests of discovery itself use fresh registries.
for _module in BUILTIN_MODULES:
    importlib.import_module(_module)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PAR_SHARED_DATA", REPO.parent / "shared" / "data"))
CIFAR10_ARCHIVE = SHARED_DATA / "cifar10-jpg.tar.gz"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10_slice(archive: Path, root: Path, per_class: dict[str, int]) -> Path:
    """Extract the first ``per_class[split]`` images of every class and split of
    the real CIFAR-10 JPEG archive into an image-folder tree under ``root``."""
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts  # cifar10-jpg/<split>/<class>/<file>
            if not member.isfile() or len(parts) != 4:
                continue
            _, split, cls, name = parts
            key = (split, cls)
            if taken.get(key, 0) >= per_class[split]:
                continue
            target = root / split / cls / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            taken[key] = taken.get(key, 0) + 1
    return root


@pytest.fixture(scope="session")
def cifar10_archive() -> Path:
    if not CIFAR10_ARCHIVE.is_file():
        pytest.fail(f"the real CIFAR-10 copy is missing: {CIFAR10_ARCHIVE} (set PAR_SHARED_DATA)")
    return CIFAR10_ARCHIVE


@pytest.fixture(scope="session")
def cifar10_slice(tmp_path_factory, cifar10_archive) -> Path:
    """A real-image CIFAR-10 tree with 40 train and 20 test images per class:
    ``<root>/cifar10-jpg/{train,test}/<class>/*.jpg``; returns ``<root>``."""
    cache = os.environ.get("PAR_TEST_SLICE_CACHE")  # set by tools/mutation.py: one extraction for all mutants
    if cache:
        root = Path(cache)
        if not (root / "complete").is_file():
            write_cifar10_slice(cifar10_archive, root / "cifar10-jpg", {"train": 40, "test": 20})
            (root / "complete").write_text("40 train, 20 test per class\n")
        return root
    root = tmp_path_factory.mktemp("cifar10_slice")
    write_cifar10_slice(cifar10_archive, root / "cifar10-jpg", {"train": 40, "test": 20})
    return root


@pytest.fixture(scope="session")
def cifar10_arrays(cifar10_slice, tmp_path_factory):
    """The slice decoded by the pipeline's own decoder (ImageArrays)."""
    from par.streams.datasets.catalog import decode, locate_source

    return decode(locate_source("cifar10", cifar10_slice, probe_network=False), tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="session")
def full_run(cifar10_slice, tmp_path_factory):
    """One complete tiny run of ``all_tables`` (every method of ``test_workflow.TINY``) that
    test modules share read-only; a test that changes it works on a copy
    (``test_workflow.fork``).  Returns (workdir, config, snakemake output)."""
    from test_workflow import config_for, snakemake

    workdir = tmp_path_factory.mktemp("workflow")
    config = config_for(cifar10_slice)
    result = snakemake(workdir, config, "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config, result.stdout + result.stderr


class ReversedTrainIds:
    """``stream`` with task ``reversed_task``'s training ids listed in decreasing order
    (a listing that images.h5 reads back sorted); everything else is the stream's."""

    def __init__(self, stream, reversed_task: int):
        self.stream, self.reversed_task = stream, reversed_task

    def task(self, u):
        task = self.stream.task(u)
        return dataclasses.replace(task, train=task.train[::-1].copy()) if u == self.reversed_task else task

    def __getattr__(self, name):
        return getattr(self.stream, name)


# ---- the learn-task chain of the strategy tests (test_baselines, test_memory_methods, test_hat) ----

@pytest.fixture(scope="module")
def stream(cifar10_arrays):
    """The cifar10-5 stream (seed 0) over the CIFAR-10 slice: 5 tasks of 2 classes."""
    from par.streams.prepare import build_stream

    return build_stream("cifar10-5", cifar10_arrays, 0)


def forgetting_config():
    """Tasks memorised without augmentation at a high learning rate, so that forgetting
    dominates the noise of 72 training images (TrainConfig)."""
    from par.training import TrainConfig

    return TrainConfig(epochs=8, batch_size=16, lr=0.05, weight_decay=0.001, grad_clip=5, augment=False)


def learn_two_tasks(method, stream, images, seed, *, body, config, options=None):
    """Tasks 1 and 2 of ``stream`` with a fresh ``method`` strategy each (``options`` its
    keyword arguments), as :func:`par.learners.job.learn_task` runs them without testing:
    ``prepare`` (weights seeded ``seed + t``), ``bind``, ``fit`` (validation = the training
    images, so the kept snapshot is the one that fits them best), ``after_task`` (carry).
    Returns copies of the model after each task."""
    import copy

    import torch

    from par.learners.strategies import get_strategy
    from par.learners.context import TaskContext
    from par.streams.tasks import sample_ids, task_data
    from par.training import Batches, fit

    cpu = torch.device("cpu")
    models, model = [], None
    for t in (1, 2):
        strategy = get_strategy(method, **(options or {}))
        torch.manual_seed(seed + t)
        task = stream.task(t)
        model = strategy.prepare(model, body, t, task.n_classes, cpu)
        x, y = task_data(images, task, "train")
        train = Batches(x, y, stream.mean, stream.std, config.batch_size, cpu, shuffle=True, augment=config.augment,
                        config=config, generator=torch.Generator().manual_seed(seed + t))
        strategy.bind(TaskContext(stream, images, task, train, sample_ids(images, task, "train"), config, cpu,
                                  seed + t))
        fit(model, t, strategy, train, Batches(x, y, stream.mean, stream.std, 500, cpu), config)
        model.carry = strategy.after_task(model, t, train)
        models.append(copy.deepcopy(model))
    return models


def train_accuracy(model, stream, images, t):
    """Accuracy (fraction) of ``model`` on task ``t``'s training images (what it memorised)."""
    import torch

    from par.streams.tasks import task_data
    from par.training import Batches, evaluate

    x, y = task_data(images, stream.task(t), "train")
    return evaluate(model, t, Batches(x, y, stream.mean, stream.std, 500, torch.device("cpu")))


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (restored after): small convolutions on a shared
    CPU run fastest and deterministically so.  Modules use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

