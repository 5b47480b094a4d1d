"""Curves to watch while a reproduction runs: per-epoch TensorBoard scalars (config ``tensorboard``).

Every learn and search job writes, when the config switch ``tensorboard`` is on,
one event folder per task and run::

    <results_dir>/tensorboard/<bench>/seed<seed>/<run>/task<t>/          the learn job
    <results_dir>/tensorboard/<bench>/seed<seed>/<run>/task<t>/search/   the cell search (PAR)

so ``tensorboard --logdir <results_dir>/tensorboard`` shows the whole
reproduction, one TensorBoard run per folder.  Scalars, one point per epoch,
written (flushed) at the end of the epoch: ``loss/train``, ``accuracy/train``,
``accuracy/val`` (fractions in [0, 1]), ``lr`` (the epoch's learning rate) and
``seconds/epoch``.  The step is the job's running epoch count: a job that calls
the training loop more than once (Learn to Grow's and MNTDP's searches, then the
training of the chosen architecture) shows its epochs one after the other.

The event files are a side product, not an output of the workflow: the switch is
read from the config inside the job, is neither a rule param nor an input, and
only observes the training loop (:func:`par.training.on_epoch_end`), so turning it
on or off changes no number and re-runs nothing.  A job that runs again (a retry,
an invalidation) starts its folder over.  Needs the ``tensorboard`` package
(``pip install '.[tensorboard]'``); ``torch.utils.tensorboard`` writes the files.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from par.training import on_epoch_end

# history row key -> TensorBoard tag
SCALARS = {"train_loss": "loss/train", "train_accuracy": "accuracy/train", "val_accuracy": "accuracy/val",
           "lr": "lr", "seconds": "seconds/epoch"}
EVENT_FILE_GLOB = "events.out.tfevents.*"


def curves_folder(results_dir: str | Path, bench: str, seed: int | str, run: str, task: int | str,
                  search: bool = False) -> Path:
    """The event folder of task ``task`` of ``run`` on ``bench``/``seed`` (module docstring);
    ``search``: the cell search's folder inside it."""
    folder = Path(results_dir) / "tensorboard" / bench / f"seed{seed}" / run / f"task{task}"
    return folder / "search" if search else folder


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch raises ImportError naming TensorBoard
        raise ImportError("config tensorboard: true needs the tensorboard package: "
                          "pip install -e '.[tensorboard]' in the checkout (or pip install tensorboard)") from err
    return SummaryWriter


@contextlib.contextmanager
def epoch_curves(folder: str | Path | None) -> Iterator[Path | None]:
    """Write the epochs of every :func:`par.training.fit` inside the block to ``folder``
    as TensorBoard scalars (module docstring); ``None``: write nothing (the switch is off).

    Event files already in ``folder`` (from an earlier run of the same job) are removed
    first; sub-folders (a task's ``search/``) are left alone.  Raises ImportError naming
    the ``tensorboard`` extra when the package is missing.
    """
    if folder is None:
        yield None
        return
    SummaryWriter = _summary_writer()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(EVENT_FILE_GLOB):
        stale.unlink()
    writer = SummaryWriter(log_dir=str(folder))
    steps = 0

    def write(task: int, row: dict) -> None:
        nonlocal steps
        for key, tag in SCALARS.items():
            if key in row:
                writer.add_scalar(tag, row[key], global_step=steps)
        steps += 1
        writer.flush()  # live: visible in TensorBoard after every epoch

    try:
        with on_epoch_end(write):
            yield folder
    finally:
        writer.close()
