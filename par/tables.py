"""Result tables: one row per (benchmark, run, seed), and mean ± std over seeds
beside the paper's numbers (``par/data/paper_results.csv``, Tables 1–5)."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from par import schemas
from par.formatting import format_number

# Which paper table a metric is taken from, in order of preference: Table 3 is
# the main comparison on classical benchmarks; Table 4 reports M; Table 5 T.
PAPER_TABLES = {"AP": (3, 1, 2, 4, 5), "AF": (3, 1), "M_millions": (4, 5), "T_hours": (5,)}


def paper_results() -> pd.DataFrame:
    """The paper's numbers in long form (the targets file, :mod:`par.targets`):
    table, benchmark, method (the paper's row), metric, value, run, tolerance."""
    with resources.files("par").joinpath("data/paper_results.csv").open() as f:
        return pd.read_csv(f, dtype={"run": "string"}, comment="#")


def paper_value(paper: pd.DataFrame, benchmark: str, run: str, metric: str) -> tuple[float | None, int | None]:
    """(value, table) of the paper row that ``run`` reproduces on ``benchmark``
    (the targets file's ``run`` column), or (None, None)."""
    for table in PAPER_TABLES[metric]:
        rows = paper[(paper.table == table) & (paper.benchmark == benchmark) & (paper.run == run)
                     & (paper.metric == metric) & paper.value.notna()]
        if len(rows):
            return float(rows.value.iloc[0]), table
    return None, None


def summary_table(metrics: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per (benchmark, run, seed) from per-run ``metrics.parquet`` frames."""
    frame = pd.concat(metrics, ignore_index=True)
    frame = frame.sort_values(["benchmark", "run", "seed"]).reset_index(drop=True)
    return frame[schemas.SUMMARY.names]


def aggregate_table(summary: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean and sample std over seeds per (benchmark, run), with the paper's values."""
    paper = paper_results() if paper is None else paper
    rows = []
    for (benchmark, run), group in summary.groupby(["benchmark", "run"], sort=True):
        method = group.method.iloc[0]
        row = {"benchmark": benchmark, "run": run, "method": method, "n_seeds": len(group)}
        for col in ("AP", "AF", "M_millions", "hours"):
            row[f"{col}_mean"] = float(group[col].mean())
            row[f"{col}_std"] = float(group[col].std(ddof=1)) if len(group) > 1 else float("nan")
        sources = []
        for metric, column in (("AP", "paper_AP"), ("AF", "paper_AF"), ("M_millions", "paper_M_millions"),
                               ("T_hours", "paper_hours")):
            value, table = paper_value(paper, benchmark, run, metric)
            row[column] = value
            if table is not None:
                sources.append(f"{metric.split('_')[0]}: Table {table}")
        row["paper_source"] = "; ".join(sources) or None
        row["extractor_weights"] = ", ".join(sorted(set(group.extractor_weights)))
        rows.append(row)
    return pd.DataFrame(rows, columns=schemas.AGGREGATE.names)


def _pm(mean: float, std: float, digits: int) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def aggregate_markdown(aggregate: pd.DataFrame) -> str:
    """A readable Markdown rendering of :func:`aggregate_table`."""
    view = pd.DataFrame({
        "benchmark": aggregate.benchmark,
        "run": aggregate.run,
        "seeds": aggregate.n_seeds,
        "AP": [_pm(m, s, 3) for m, s in zip(aggregate.AP_mean, aggregate.AP_std)],
        "paper AP": [format_number(v, 3) for v in aggregate.paper_AP],
        "AF": [_pm(m, s, 3) for m, s in zip(aggregate.AF_mean, aggregate.AF_std)],
        "paper AF": [format_number(v, 3) for v in aggregate.paper_AF],
        "M (M)": [_pm(m, s, 3) for m, s in zip(aggregate.M_millions_mean, aggregate.M_millions_std)],
        "paper M": [format_number(v, 3) for v in aggregate.paper_M_millions],
        "T (h)": [_pm(m, s, 3) for m, s in zip(aggregate.hours_mean, aggregate.hours_std)],
        "paper T": [format_number(v, 1) for v in aggregate.paper_hours],
    })
    weights = "; ".join(sorted(set(aggregate.extractor_weights)))
    return (view.to_markdown(index=False) + "\n\nAP, AF: fractions (Eq. 11); M: parameters of all experts and heads "
            f"in millions; T: summed job wall time in hours. Relatedness extractor: {weights}.\n")


def summary_markdown(summary: pd.DataFrame) -> str:
    """A readable Markdown rendering of :func:`summary_table`."""
    return summary.to_markdown(index=False, floatfmt=".4f") + "\n"
