"""TensorBoard curves (config ``tensorboard``, par.results.curves): the event files read back.

The unit tests fit a one-parameter model whose every number is known by hand
(tests/test_training.py's ``_Bias``: loss = b, SGD moves b down by the epoch's
learning rate) and read the scalars back with TensorBoard's own reader.  The
workflow test runs the real learn_task and search_cell jobs of a tiny PAR and a
finetune run with the switch on, reads one folder per learn job, and checks by a
dry run that turning the switch off or on again re-runs nothing.
"""
from __future__ import annotations

import json
import sys

import pytest
import torch

from par.results.curves import SCALARS, curves_folder, epoch_curves
from par.training import TrainConfig, fit, on_epoch_end
from test_training import PUSH, _Bias, _one_batch, _PushDown

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of every event file in ``folder`` (not its sub-folders)."""
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_every_epoch_is_written_with_its_numbers(tmp_path):
    # Cosine lr over 3 epochs: 0.1, 0.075, 0.025 -> b = 0.15, 0.05, -0.025, -0.05; loss = b before the step,
    # validation accuracy 1 while b > 0 after it.
    config = TrainConfig(epochs=3, **PUSH)
    with epoch_curves(tmp_path / "task1") as folder:
        result = fit(_Bias(0.15), 1, _PushDown(False), _one_batch(), _one_batch(), config)
    assert folder == tmp_path / "task1"
    scalars = read_scalars(folder)
    assert set(scalars) == set(SCALARS.values())
    assert [step for step, _ in scalars["lr"]] == [0, 1, 2]
    assert [v for _, v in scalars["lr"]] == pytest.approx([0.1, 0.075, 0.025])
    assert [v for _, v in scalars["loss/train"]] == pytest.approx([0.15, 0.05, -0.025])
    assert [v for _, v in scalars["accuracy/val"]] == [1.0, 0.0, 0.0]
    assert [v for _, v in scalars["accuracy/train"]] == [1.0, 1.0, 0.0]
    for key, tag in SCALARS.items():  # the record's history and the curves are the same numbers
        if key != "lr":
            assert [v for _, v in scalars[tag]] == pytest.approx([row[key] for row in result.history])


def test_the_curves_change_no_number(tmp_path):
    config = TrainConfig(epochs=3, **PUSH)
    plain, watched = _Bias(0.15), _Bias(0.15)
    a = fit(plain, 1, _PushDown(False), _one_batch(), _one_batch(), config)
    with epoch_curves(tmp_path / "t"):
        b = fit(watched, 1, _PushDown(False), _one_batch(), _one_batch(), config)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in a.history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in b.history]
    assert torch.equal(plain.b, watched.b) and (a.best_epoch, a.best_val_accuracy) == (b.best_epoch, b.best_val_accuracy)


def test_several_fits_follow_each_other_and_a_rerun_starts_over(tmp_path):
    folder = tmp_path / "task2"
    (folder / "search").mkdir(parents=True)
    (folder / "search" / "events.out.tfevents.1.keep").write_bytes(b"")  # another job's folder: kept
    for _ in range(2):  # the second block is a re-run of the job: its folder starts over
        with epoch_curves(folder):
            fit(_Bias(0.15), 1, _PushDown(False), _one_batch(), _one_batch(), TrainConfig(epochs=2, **PUSH))
            fit(_Bias(0.15), 1, _PushDown(False), _one_batch(), _one_batch(), TrainConfig(epochs=1, **PUSH))
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    assert [step for step, _ in read_scalars(folder)["lr"]] == [0, 1, 2]    # 2 epochs, then 1
    assert [v for _, v in read_scalars(folder)["lr"]] == pytest.approx([0.1, 0.05, 0.1])  # cosine over 2 epochs, then 1
    assert (folder / "search" / "events.out.tfevents.1.keep").exists()


def test_off_writes_nothing_and_callbacks_end_with_their_block(tmp_path):
    seen = []
    with epoch_curves(None) as folder:
        with on_epoch_end(lambda task, row: seen.append((task, row["epoch"], row["lr"]))):
            fit(_Bias(0.15), 4, _PushDown(False), _one_batch(), _one_batch(), TrainConfig(epochs=2, **PUSH))
        fit(_Bias(0.15), 4, _PushDown(False), _one_batch(), _one_batch(), TrainConfig(epochs=2, **PUSH))
    assert folder is None and list(tmp_path.iterdir()) == []
    assert seen == [(4, 0, 0.1), (4, 1, pytest.approx(0.05))]


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"tensorboard.*pip install -e '\.\[tensorboard\]'"):
        with epoch_curves(tmp_path / "t"):
            pass


def test_folder_layout():
    assert curves_folder("res", "cifar10-5", 0, "par", 3).as_posix() == "res/tensorboard/cifar10-5/seed0/par/task3"
    assert curves_folder("res", "b", "1", "ewc", 2, search=True).as_posix() == "res/tensorboard/b/seed1/ewc/task2/search"


@pytest.mark.workflow
def test_learn_and_search_jobs_write_curves_and_the_switch_reruns_nothing(cifar10_slice, tmp_path):
    from test_workflow import config_for, scheduled_jobs, snakemake

    config = config_for(cifar10_slice)
    config["runs"] = {"finetune": {"method": "finetune"}, "par": {"method": "par"}}
    config["training"]["epochs"] = 2
    config["tensorboard"] = True
    targets = [f"results/runs/cifar10-5/seed0/{run}/accuracy_matrix.parquet" for run in config["runs"]]
    result = snakemake(tmp_path, config, *targets, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    root = tmp_path / "results" / "tensorboard" / "cifar10-5" / "seed0"
    for run in ("finetune", "par"):
        for task in range(1, 6):
            record = json.loads((tmp_path / f"results/runs/cifar10-5/seed0/{run}/states/task{task}.json").read_text())
            scalars = read_scalars(root / run / f"task{task}")
            steps = [s for s, _ in scalars["accuracy/val"]]
            assert steps == list(range(len(record["history"]))), (run, task)
            assert [v for _, v in scalars["accuracy/val"]] == pytest.approx(
                [h["val_accuracy"] for h in record["history"]])
            assert [v for _, v in scalars["loss/train"]] == pytest.approx([h["train_loss"] for h in record["history"]])
    # PAR's cell search (task 1 searches; the later tasks join its group): its own folder
    cell = json.loads((tmp_path / "results/runs/cifar10-5/seed0/par/cells/task1.json").read_text())
    search = read_scalars(root / "par" / "task1" / "search")
    assert len(search["accuracy/val"]) == len(cell["history"]) >= 1
    for switch in (False, True):
        config["tensorboard"] = switch
        dry = snakemake(tmp_path, config, *targets, "--dry-run")
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert scheduled_jobs(dry.stdout) == set() and "Nothing to be done" in dry.stdout + dry.stderr
