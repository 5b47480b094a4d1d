"""The paper's Tables 1–5 as targets: paper value, tolerance and a verdict per cell.

The single source is ``par/data/paper_results.csv`` (long form), one row per cell
of the paper's tables:

=========  ==============================================================
table      paper table (1–5)
benchmark  our benchmark name (e.g. ``ctrl-s-minus``, ``cifar100-10``)
method     the paper's row label (``PAR``, ``EWC``, ``1 Fixed`` …)
metric     ``AP``, ``AF``, ``M_millions`` or ``T_hours``
value      the paper's number (empty where the paper prints "-")
run        the configured/generated run that reproduces the row (empty: the
           project does not implement the method)
tolerance  two-sided tolerance on the mean: AP and AF ±0.02, M ±10 %, T ±50 %
           (wall time depends on the hardware)
=========  ==============================================================

Verdict of one cell, from the values of the run over its seeds (mean m, sample
standard deviation s, s = 0 for one seed), paper value p and tolerance τ:

- ``within tolerance``: |m − p| ≤ τ + s
- ``gap``: |m − p| > τ + s
- ``not run``: the row has a run but no results for it (run or benchmark not
  configured, or not finished)
- ``not reproduced``: the method is not implemented here (no run)
- ``reported from …``: no run, and the paper itself cites the row from another
  paper (``par/data/paper_sources.csv``): the paper's value and its source
- ``no paper value``: the paper prints "-"
- ``other benchmark``: measured on another benchmark than the paper's (Table 5
  rows when ``paper_targets.ablation_benchmark`` is not CIFAR100-10): values
  shown, no verdict
- ``not in the paper``: an extra row for a configured run whose method the paper
  does not report (a method of one's own, e.g. ``si``): its mean ± std over seeds
  on the table's benchmarks and metrics, beside the paper's rows, no paper value
  and no verdict (:func:`runs_not_in_the_paper`, :func:`extra_cells`; Tables 1–4,
  not Table 5, the ablation of PAR's own components)
"""
from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from par.infra import schemas
from par.infra.io import CorruptFileError

if TYPE_CHECKING:  # imported where used: the workflow reads the targets while parsing, which must stay fast
    import pandas as pd

WITHIN = "within tolerance"
GAP = "gap"
NOT_RUN = "not run"
NOT_REPRODUCED = "not reproduced"
NO_PAPER_VALUE = "no paper value"
OTHER_BENCHMARK = "other benchmark"
NOT_IN_PAPER = "not in the paper"

# Metric of the targets file -> column of tables/summary.parquet.
METRIC_COLUMN = {"AP": "AP", "AF": "AF", "M_millions": "M_millions", "T_hours": "hours"}
COLUMNS = ("table", "benchmark", "method", "metric", "value", "run", "tolerance")
TABLE_TITLES = {
    1: "Table 1: CTrL streams (AP, AF)",
    2: "Table 2: Mixed CIFAR100 and F-CelebA (AP)",
    3: "Table 3: CIFAR100-10 and MiniImageNet-20 (AP, AF)",
    4: "Table 4: parameter count M (CIFAR100-10, CTrL S_long)",
    5: "Table 5: ablation of PAR's components on CIFAR100-10 (AP, M, T)",
}


def _number(text: str, name: str, line: int, column: str) -> float | None:
    if text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise CorruptFileError(f"{name}, line {line}: {column} {text!r} is not a number") from None


def target_rows(path: str | Path | None = None) -> list[dict]:
    """The rows of the targets file (default: the packaged
    ``par/data/paper_results.csv``) as dicts with keys :data:`COLUMNS`: table
    (int), value and tolerance (float or None where empty), run (str or None
    where the project has no run), and ``source``: where the paper took the
    row from when it cites another paper (a ``source`` column of the file, else
    :func:`paper_sources`; None for the paper's own runs).  Lines starting with ``#`` are comments.
    Read with :mod:`csv`, so the workflow can read it while parsing without
    importing pandas.

    Raises CorruptFileError naming the file (and line) when a column is missing,
    a number does not parse, a metric is unknown or a tolerance is negative /
    missing beside a paper value.
    """
    if path is None:
        name = "par/data/paper_results.csv"
        text = resources.files("par").joinpath("data/paper_results.csv").read_text()
    else:
        name, text = str(path), Path(path).read_text()
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if not line.lstrip().startswith("#")]
    reader = csv.DictReader([line for _, line in lines])
    missing = set(COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise CorruptFileError(f"{name}: missing columns {sorted(missing)}")
    rows = []
    sources = paper_sources()
    for (line, _), raw in zip(lines[1:], reader):
        table = _number(raw["table"], name, line, "table")
        if raw["metric"] not in METRIC_COLUMN:
            raise CorruptFileError(f"{name}, line {line}: unknown metric {raw['metric']!r}")
        value = _number(raw["value"], name, line, "value")
        tolerance = _number(raw["tolerance"], name, line, "tolerance")
        if value is not None and (tolerance is None or tolerance < 0):
            raise CorruptFileError(f"{name}, line {line}: every paper value needs a tolerance >= 0")
        table = int(table) if table is not None else None
        source = (raw.get("source") or "").strip() or sources.get((table, raw["method"]))
        rows.append({**raw, "table": table, "value": value,
                     "run": raw["run"] or None, "tolerance": tolerance, "source": source})
    return rows


def paper_sources() -> dict[tuple[int, str], str]:
    """(table, paper row) → where the paper took the row's numbers from, e.g.
    ``reported from LMC (…)``, for the rows the paper cites rather than runs
    (``par/data/paper_sources.csv``; paper Sec. 4.1, docs/spec.md §9)."""
    text = resources.files("par").joinpath("data/paper_sources.csv").read_text()
    reader = csv.DictReader([line for line in text.splitlines() if not line.lstrip().startswith("#")])
    return {(int(r["table"]), r["method"]): r["source"] for r in reader}


def load_targets(path: str | Path | None = None) -> pd.DataFrame:
    """:func:`target_rows` as a DataFrame (empty cells NaN / <NA>).

    Raises CorruptFileError as :func:`target_rows` does.
    """
    import pandas as pd

    return pd.DataFrame(target_rows(path)).astype({"value": "float64", "tolerance": "float64", "run": "string",
                                                   "source": "string"})


def verdict(paper: float | None, tolerance: float | None, values: list[float] | np.ndarray | None,
            *, has_run: bool = True) -> tuple[str, float, float, int]:
    """(status, mean, std, n) of one cell from the per-seed ``values``.

    ``std`` is the sample standard deviation (ddof 1; 0 for one seed); see the
    module docstring for the rule.  ``paper`` None/NaN → ``no paper value``.
    """
    values = np.asarray([] if values is None else values, dtype=np.float64)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n > 1 else (0.0 if n == 1 else math.nan)
    if not has_run:
        return NOT_REPRODUCED, mean, std, n
    if n == 0:
        return NOT_RUN, mean, std, n
    if paper is None or math.isnan(paper):
        return NO_PAPER_VALUE, mean, std, n
    return (WITHIN if abs(mean - paper) <= tolerance + std else GAP), mean, std, n


def runs_not_in_the_paper(run_methods: dict[str, str], rows: list[dict] | None = None) -> list[str]:
    """The runs, in ``run_methods``' order, whose method the paper does not report.

    ``run_methods``: configured run → its method.  The paper's methods are the
    runs the targets ``rows`` name (default: :func:`target_rows`; their names are
    those of ``config/config.yaml``, each its method's name, or a generated PAR
    run) and the methods those runs have as configured.  Reads no pandas: the
    workflow calls it while it is parsed.
    """
    named = {r["run"] for r in (target_rows() if rows is None else rows) if r["run"]}
    paper_methods = named | {run_methods[r] for r in named if r in run_methods}
    return [run for run, method in run_methods.items() if method not in paper_methods]


def extra_cells(targets: pd.DataFrame, summary: pd.DataFrame, table: int, runs: list[str]) -> pd.DataFrame:
    """The cells of the extra rows of paper table ``table``: one row per run of ``runs``
    (methods not in the paper, :func:`runs_not_in_the_paper`) that has results in
    ``summary`` on one of the table's benchmarks, one cell per (benchmark, metric)
    column of the table, labelled by the run's name: ``n_seeds``, ``mean`` and the
    sample ``std`` as :func:`verdict` computes them, no paper value, tolerance or
    verdict (status ``not in the paper``).  None for Table 5, the ablation of
    PAR's components.  Columns: :data:`par.infra.schemas.TARGET_CELLS`.
    """
    import pandas as pd

    columns = targets[targets.table == table][["benchmark", "metric"]].drop_duplicates()
    rows = []
    for run in runs if table != 5 else []:
        part = summary[(summary.run == run) & summary.benchmark.isin(columns.benchmark)]
        if part.empty:
            continue
        for column in columns.itertuples(index=False):
            values = part[part.benchmark == column.benchmark][METRIC_COLUMN[column.metric]].to_numpy()
            _, mean, std, n = verdict(None, None, values)
            rows.append({"table": int(table), "benchmark": column.benchmark, "method": run, "metric": column.metric,
                         "paper": None, "tolerance": None, "run": run, "measured_on": column.benchmark,
                         "n_seeds": n, "mean": mean, "std": std, "status": NOT_IN_PAPER})
    return pd.DataFrame(rows, columns=schemas.TARGET_CELLS.names).astype({"paper": "float64", "tolerance": "float64"})


def table_cells(targets: pd.DataFrame, summary: pd.DataFrame, table: int,
                measured_on: dict[str, str] | None = None, extra_runs: list[str] = ()) -> pd.DataFrame:
    """Every cell of paper table ``table`` with the reproduction and its verdict,
    then the cells of the rows of ``extra_runs`` (:func:`extra_cells`).

    ``summary``: one row per (benchmark, run, seed) (tables/summary.parquet
    columns).  ``measured_on`` maps a paper benchmark to the benchmark the runs
    were made on (Table 5: ``paper_targets.ablation_benchmark``); by default the
    same.  Columns: :data:`par.infra.schemas.TARGET_CELLS`.
    """
    import pandas as pd

    measured_on = measured_on or {}
    rows = []
    for cell in targets[targets.table == table].itertuples(index=False):
        bench = measured_on.get(cell.benchmark, cell.benchmark)
        has_run = isinstance(cell.run, str) and bool(cell.run)
        values = []
        if has_run:
            part = summary[(summary.benchmark == bench) & (summary.run == cell.run)]
            values = part[METRIC_COLUMN[cell.metric]].to_numpy()
        paper = None if pd.isna(cell.value) else float(cell.value)
        status, mean, std, n = verdict(paper, cell.tolerance, values, has_run=has_run)
        if status == NOT_REPRODUCED and isinstance(cell.source, str) and cell.source:
            status = cell.source  # the paper cites the row: "reported from LMC (…)"
        if bench != cell.benchmark and status in (WITHIN, GAP):
            status = OTHER_BENCHMARK
        if has_run and isinstance(cell.source, str) and cell.source:
            status = f"{status}; paper: {cell.source}"  # our run beside a cited number ("…; AlexNet")
        rows.append({"table": int(table), "benchmark": cell.benchmark, "method": cell.method, "metric": cell.metric,
                     "paper": paper, "tolerance": None if pd.isna(cell.tolerance) else float(cell.tolerance),
                     "run": cell.run if has_run else None, "measured_on": bench if has_run else None,
                     "n_seeds": n, "mean": mean, "std": std, "status": status})
    cells = pd.DataFrame(rows, columns=schemas.TARGET_CELLS.names)
    extra = extra_cells(targets, summary, table, list(extra_runs))
    return pd.concat([cells, extra], ignore_index=True) if len(extra) else cells
