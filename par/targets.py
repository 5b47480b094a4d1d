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
"""
from __future__ import annotations

import csv
import html
import math
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from par import schemas
from par.io import CorruptFileError
from par.formatting import format_number

if TYPE_CHECKING:  # imported where used: the workflow reads the targets while parsing (issue 8)
    import pandas as pd

WITHIN = "within tolerance"
GAP = "gap"
NOT_RUN = "not run"
NOT_REPRODUCED = "not reproduced"
NO_PAPER_VALUE = "no paper value"
OTHER_BENCHMARK = "other benchmark"

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
    (``par/data/paper_sources.csv``; paper Sec. 4.1, docs/spec.md §10)."""
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


def table_cells(targets: pd.DataFrame, summary: pd.DataFrame, table: int,
                measured_on: dict[str, str] | None = None) -> pd.DataFrame:
    """Every cell of paper table ``table`` with the reproduction and its verdict.

    ``summary``: one row per (benchmark, run, seed) (tables/summary.parquet
    columns).  ``measured_on`` maps a paper benchmark to the benchmark the runs
    were made on (Table 5: ``paper_targets.ablation_benchmark``); by default the
    same.  Columns: :data:`par.schemas.TARGET_CELLS`.
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
    return pd.DataFrame(rows, columns=schemas.TARGET_CELLS.names)


def cell_text(row) -> str:
    """``paper → ours ± std (status)`` of one cell, as in the Markdown tables."""
    paper = format_number(row.paper)
    if row.status in (NOT_REPRODUCED, NOT_RUN) or row.n_seeds == 0:
        return f"{paper} ({row.status})"
    ours = format_number(row.mean) + (f" ± {format_number(row.std)}" if row.n_seeds > 1 else "")
    return f"{paper} → {ours} ({row.status})"


def _wide(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per paper method (with its run), one column per (benchmark, metric)."""
    wide = cells.assign(text=[cell_text(r) for r in cells.itertuples(index=False)],
                        column=cells.benchmark + " " + cells.metric)
    order = list(dict.fromkeys(wide.column))
    view = wide.pivot_table(index="method", columns="column", values="text", aggfunc="first", sort=False)
    view = view.reindex(columns=order).fillna("")
    view.columns.name = None
    runs = wide.groupby("method", sort=False).run.first()
    view.insert(0, "run", [r if isinstance(r := runs.get(m), str) and r else "–" for m in view.index])
    return view.reset_index()


def _notes(cells: pd.DataFrame) -> str:
    moved = cells[cells.measured_on.notna() & (cells.measured_on != cells.benchmark)]
    return "".join(f"Runs of the {paper} columns were made on {ours} (paper_targets.ablation_benchmark).\n\n"
                   for paper, ours in dict(zip(moved.benchmark, moved.measured_on)).items())


def table_markdown(cells: pd.DataFrame, title: str | None = None) -> str:
    """One row per paper method, one column per (benchmark, metric):
    ``paper → mean ± std (status)``."""
    table = int(cells.table.iloc[0]) if len(cells) else 0
    counts = cells.status.value_counts()
    tally = ", ".join(f"{k}: {counts[k]}" for k in counts.index)
    return (f"## {title or TABLE_TITLES.get(table, f'Table {table}')}\n\n{_notes(cells)}"
            + _wide(cells).to_markdown(index=False)
            + f"\n\nCells: paper → our mean ± std over seeds (status). Status: |mean − paper| ≤ tolerance + std "
            f"is within tolerance, else a gap. {tally}.\n")


def table_html(title: str, cells: pd.DataFrame) -> str:
    """A self-contained HTML page of the same table (for ``snakemake --report``),
    in the report's one style (:func:`par.tables.html_page`)."""
    from par.tables import frame_html, html_page

    notes = [line for line in _notes(cells).split("\n\n") if line]
    return html_page(title, frame_html(_wide(cells)), notes + [
        "Cells: paper → our mean ± std over seeds (status); within tolerance: |mean − paper| ≤ tolerance + std; "
        "not run: the row's run or benchmark is not configured; not reproduced: the method is not implemented here."])


# ---- the README section -------------------------------------------------------------------

README_BEGIN = "<!-- paper-targets:begin (rendered by `python -m par.targets`; do not edit by hand) -->"
README_END = "<!-- paper-targets:end -->"


def readme_section(targets: pd.DataFrame) -> str:
    """The README's comparison with the paper, rendered from the targets file:
    one row per paper row the project reproduces (a method with a run) with its
    paper values ± tolerances, and per table the methods without a run.  The
    verdicts of a reproduction are in its ``tables/table<N>.md``."""
    import pandas as pd

    lines = [README_BEGIN, ""]
    reproduced = targets[targets.run.notna()]
    rows = {}
    for r in reproduced.itertuples(index=False):
        key = (r.table, r.benchmark, r.method)
        row = rows.setdefault(key, {"table": r.table, "benchmark": r.benchmark, "paper row": r.method, "run": r.run})
        row[r.metric] = "–" if pd.isna(r.value) else f"{r.value:g} ± {r.tolerance:g}"
    frame = pd.DataFrame(list(rows.values()))
    metrics = [m for m in METRIC_COLUMN if m in frame.columns]
    lines.append(frame[["table", "benchmark", "paper row", "run", *metrics]].fillna("").to_markdown(index=False))
    lines.append("")
    for table, part in targets.groupby("table"):
        part = part[part.run.isna() & ~part.method.isin(part.method[part.run.notna()])]  # rows no run answers
        cited = part[part.source.notna()]
        if len(cited):
            rows_cited = ", ".join(f"{m} ({s})" for m, s in dict(zip(cited.method, cited.source)).items())
            lines.append(f"- Table {table}, cited by the paper from other papers (not run here): {rows_cited}")
        missing = part[part.source.isna()]
        if len(missing):
            methods = ", ".join(dict.fromkeys(missing.method))
            lines.append(f"- Table {table}, {NOT_REPRODUCED} (method not implemented here): {methods}")
    lines += ["", README_END]
    return "\n".join(lines)


def render_readme(readme: str, section: str) -> str:
    """``readme`` with the text between the markers replaced by ``section``;
    ValueError when the markers are missing."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README lacks the markers {README_BEGIN!r} … {README_END!r}")
    return readme[:start] + section + readme[end + len(README_END):]


def _main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Render the README's comparison with the paper from the targets file.")
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args(argv)
    path = Path(args.readme)
    path.write_text(render_readme(path.read_text(), readme_section(load_targets())))


def run_summary(metrics: list[pd.DataFrame], aliases: dict[str, str]) -> pd.DataFrame:
    """One row per (benchmark, run, seed) from per-run ``metrics.parquet`` frames
    (possibly none), with the rows of aliased runs under their aliases' names."""
    import pandas as pd

    from par.tables import summary_table

    summary = summary_table(metrics) if metrics else pd.DataFrame(columns=schemas.SUMMARY.names)
    return with_aliases(summary, aliases)


def with_aliases(summary: pd.DataFrame, aliases: dict[str, str]) -> pd.DataFrame:
    """``summary`` plus a copy of the rows of each aliased run under the alias's
    name (a generated run with the same settings as an existing one)."""
    import pandas as pd

    copies = [summary[summary.run == run].assign(run=alias) for alias, run in aliases.items()]
    return pd.concat([summary, *copies], ignore_index=True) if copies else summary


def switch_table(summary: pd.DataFrame, switches, unavailable: dict[str, str], benchmark: str,
                 reference_run: str = "par") -> pd.DataFrame:
    """One row per paper-vs-code switch (one run each, all else fixed): AP, AF, M, experts,
    T on ``benchmark`` and the AP change against ``reference_run``.

    ``switches``: :class:`par.ablations.Switch` objects; ``unavailable``: switch
    run -> why it cannot run in this build.  Columns: :data:`par.schemas.SWITCH_ABLATION`.
    """
    import pandas as pd

    part = summary[summary.benchmark == benchmark]
    reference = part[part.run == reference_run].AP
    reference_ap = float(reference.mean()) if len(reference) else math.nan
    rows = []
    for switch in switches:
        runs = part[part.run == switch.run]
        why = unavailable.get(switch.run)
        n = 0 if why else len(runs)
        mean = (lambda c: float(runs[c].mean()) if n else math.nan)
        rows.append({"switch": switch.name, "value": str(switch.value), "what": switch.what,
                     "run": None if why else switch.run, "benchmark": benchmark, "n_seeds": n,
                     "AP_mean": mean("AP"), "AP_std": float(runs.AP.std(ddof=1)) if n > 1 else (0.0 if n else math.nan),
                     "AF_mean": mean("AF"), "M_millions_mean": mean("M_millions"), "n_groups_mean": mean("n_groups"),
                     "hours_mean": mean("hours"), "delta_AP": mean("AP") - reference_ap,
                     "status": why or ("ran" if n else NOT_RUN)})
    return pd.DataFrame(rows, columns=schemas.SWITCH_ABLATION.names)


def switch_view(table: pd.DataFrame, reference_run: str = "par") -> pd.DataFrame:
    """:func:`switch_table` with human column names and formatted cells (no NaN)."""
    import pandas as pd

    return pd.DataFrame({
        "switch": table.switch, "value": table.value, "run": table.run.fillna("–"), "seeds": table.n_seeds,
        "AP": [format_number(m) + (f" ± {format_number(s)}" if n > 1 else "") for m, s, n in zip(table.AP_mean, table.AP_std, table.n_seeds)],
        f"ΔAP vs {reference_run}": [format_number(v) for v in table.delta_AP],
        "AF": [format_number(v) for v in table.AF_mean], "M (millions)": [format_number(v) for v in table.M_millions_mean],
        "experts": [format_number(v, 1) for v in table.n_groups_mean], "T (hours)": [format_number(v) for v in table.hours_mean],
        "status": table.status, "what": table.what,
    })


def _switch_title(table: pd.DataFrame, reference_run: str) -> str:
    bench = table.benchmark.iloc[0] if len(table) else ""
    return f"Paper-text switches on {bench}, one run each (everything else as `{reference_run}`)"


def switch_markdown(table: pd.DataFrame, reference_run: str = "par") -> str:
    """Markdown rendering of :func:`switch_table`."""
    return f"## {_switch_title(table, reference_run)}\n\n" + switch_view(table, reference_run).to_markdown(index=False) + "\n"


def switch_html(table: pd.DataFrame, reference_run: str = "par") -> str:
    """HTML page of :func:`switch_table` in the report's style."""
    from par.tables import frame_html, html_page

    return html_page(_switch_title(table, reference_run), frame_html(switch_view(table, reference_run)), [
        f"ΔAP: the run's mean AP minus that of `{reference_run}`; M in millions of parameters, T in hours of "
        "summed job wall time; – : no value."])


if __name__ == "__main__":
    _main()
