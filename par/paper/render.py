"""The paper's Tables 1–5 rendered: one row per paper method, one column per
(benchmark, metric), cells ``paper → ours ± std (status)`` (Markdown for the
terminal, HTML for ``snakemake --report``), and the docs site's comparison with
the paper, ``docs/reference/paper-targets.md`` (``python -m par.paper.render`` rewrites it).  The cells themselves,
paper values and verdicts, come from :mod:`par.paper.targets`."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from par.infra.formatting import format_number
from par.paper.targets import METRIC_COLUMN, NOT_IN_PAPER, NOT_REPRODUCED, NOT_RUN, TABLE_TITLES, load_targets

if TYPE_CHECKING:
    import pandas as pd


def cell_text(row) -> str:
    """``paper → ours ± std (status)`` of one cell, as in the Markdown tables; a cell
    of an extra row (a method not in the paper) is only ``ours ± std``, "–" without results."""
    ours = format_number(row.mean) + (f" ± {format_number(row.std)}" if row.n_seeds > 1 else "")
    if row.status == NOT_IN_PAPER:
        return ours if row.n_seeds else "–"
    paper = format_number(row.paper)
    if row.status in (NOT_REPRODUCED, NOT_RUN) or row.n_seeds == 0:
        return f"{paper} ({row.status})"
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
    notes = "".join(f"Runs of the {paper} columns were made on {ours} (paper_targets.ablation_benchmark).\n\n"
                    for paper, ours in dict(zip(moved.benchmark, moved.measured_on)).items())
    extra = list(dict.fromkeys(cells.run[cells.status == NOT_IN_PAPER]))
    if extra:
        notes += (f"Rows {', '.join(extra)}: runs of methods the paper does not report, our mean ± std over seeds "
                  "beside the paper's rows, no verdict.\n\n")
    return notes


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
    in the report's one style (:func:`par.results.tables.html_page`)."""
    from par.results.tables import frame_html, html_page

    notes = [line for line in _notes(cells).split("\n\n") if line]
    return html_page(title, frame_html(_wide(cells)), notes + [
        "Cells: paper → our mean ± std over seeds (status); within tolerance: |mean − paper| ≤ tolerance + std; "
        "not run: the row's run or benchmark is not configured; not reproduced: the method is not implemented here."])


README_BEGIN = "<!-- paper-targets:begin (rendered by `python -m par.paper.render`; do not edit by hand) -->"
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

    parser = argparse.ArgumentParser(description="Render the docs page's comparison with the paper from the targets file.")
    parser.add_argument("--readme", default="docs/reference/paper-targets.md",
                        help="the Markdown page holding the markers (default: %(default)s)")
    args = parser.parse_args(argv)
    path = Path(args.readme)
    path.write_text(render_readme(path.read_text(), readme_section(load_targets())))


if __name__ == "__main__":
    _main()
