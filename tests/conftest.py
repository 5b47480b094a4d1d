"""Shared fixtures: a small slice of the real CIFAR-10 copy in ../shared/data."""
from __future__ import annotations

import dataclasses
import os
import tarfile
from pathlib import Path

import pytest

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
