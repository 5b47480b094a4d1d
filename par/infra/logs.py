"""Per-job logging: everything a job prints goes to its Snakemake ``log:`` file."""
from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def job_log(path: str | Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send logging records, stdout and stderr to ``path`` (created, truncated).

    An exception escaping the block is written to the log with its traceback
    and re-raised, so Snakemake reports the job as failed and points at the log.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(level)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                try:
                    yield logging.getLogger("par.job")
                except BaseException:
                    logging.getLogger("par.job").exception("job failed")
                    raise
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
            sys.stdout.flush()
