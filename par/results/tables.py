"""Result tables: one row per (benchmark, run, seed), and mean ± std over seeds
beside the paper's numbers (``par/data/paper_results.csv``, Tables 1–5)."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from par.infra import schemas
from par.infra.formatting import format_number

# Which paper table a metric is taken from, in order of preference: Table 3 is
# the main comparison on classical benchmarks; Table 4 reports M; Table 5 T.
PAPER_TABLES = {"AP": (3, 1, 2, 4, 5), "AF": (3, 1), "M_millions": (4, 5), "T_hours": (5,)}


def paper_results() -> pd.DataFrame:
    """The paper's numbers in long form (the targets file, :mod:`par.paper.targets`):
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
    if mean is None or np.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if std is None or np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


# Weights a run without a plan records: the column means nothing for it.
UNUSED_WEIGHTS = "unused"


def _weights(value) -> str:
    return "–" if not isinstance(value, str) or value in ("", UNUSED_WEIGHTS) else value


def _used_weights(values) -> list[str]:
    """Distinct extractor weights behind the relatedness stage, "unused" (baselines) left out."""
    return sorted({w for v in values if isinstance(v, str) for w in v.split(", ") if w and w != UNUSED_WEIGHTS})


AGGREGATE_NOTE = ("AP, AF: fractions (Eq. 11; AF < 0 is forgetting); M: parameters of all experts and heads in "
                  "millions; T: summed job wall time in hours; mean ± std over seeds (one seed: the value); "
                  "– : no value (the paper prints none, or one seed gives no std).")


def aggregate_view(aggregate: pd.DataFrame) -> pd.DataFrame:
    """:func:`aggregate_table` with human column names and formatted cells (no NaN)."""
    return pd.DataFrame({
        "benchmark": aggregate.benchmark,
        "run": aggregate.run,
        "seeds": aggregate.n_seeds,
        "AP": [_pm(m, s, 3) for m, s in zip(aggregate.AP_mean, aggregate.AP_std)],
        "paper AP": [format_number(v, 3) for v in aggregate.paper_AP],
        "AF": [_pm(m, s, 3) for m, s in zip(aggregate.AF_mean, aggregate.AF_std)],
        "paper AF": [format_number(v, 3) for v in aggregate.paper_AF],
        "M (millions)": [_pm(m, s, 3) for m, s in zip(aggregate.M_millions_mean, aggregate.M_millions_std)],
        "paper M": [format_number(v, 3) for v in aggregate.paper_M_millions],
        "T (hours)": [_pm(m, s, 3) for m, s in zip(aggregate.hours_mean, aggregate.hours_std)],
        "paper T": [format_number(v, 1) for v in aggregate.paper_hours],
    })


def _extractor_note(values) -> str:
    weights = _used_weights(values)
    return f" Relatedness extractor (PAR's plan): {'; '.join(weights)}." if weights else ""


def aggregate_markdown(aggregate: pd.DataFrame) -> str:
    """A readable Markdown rendering of :func:`aggregate_table`."""
    return (aggregate_view(aggregate).to_markdown(index=False) + "\n\n" + AGGREGATE_NOTE
            + _extractor_note(aggregate.extractor_weights) + "\n")


SUMMARY_NOTE = ("One row per run and seed. AP, AF: fractions (Eq. 11); M: parameters of all experts and heads in "
                "millions; T: summed wall time of the run's learn and search jobs; critical path: its longest chain "
                "of dependent jobs; experts: task groups (models allocated); relatedness extractor: the weights "
                "behind PAR's distances (– for methods without a plan).")


def summary_view(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary_table` with human column names and formatted cells (no NaN)."""
    return pd.DataFrame({
        "benchmark": summary.benchmark, "run": summary.run, "method": summary.method, "seed": summary.seed,
        "AP": [format_number(v, 4) for v in summary.AP], "AF": [format_number(v, 4) for v in summary.AF],
        "M (millions)": [format_number(v, 4) for v in summary.M_millions], "T (hours)": [format_number(v, 4) for v in summary.hours],
        "critical path (hours)": [format_number(v, 4) for v in summary.critical_path_hours],
        "experts": summary.n_groups,
        "relatedness extractor": [_weights(v) for v in summary.extractor_weights],
    })


def summary_markdown(summary: pd.DataFrame) -> str:
    """A readable Markdown rendering of :func:`summary_table`."""
    return summary_view(summary).to_markdown(index=False) + "\n\n" + SUMMARY_NOTE + "\n"


# ---- HTML (the report) ------------------------------------------------------------------

# One style for every HTML table of the report: single borders, wrapped cells,
# and a horizontal scroll bar inside the page when a table is still too wide.
HTML_STYLE = (
    "body{font:14px/1.4 system-ui,sans-serif;margin:12px;color:#222}"
    "h3{margin:4px 0 8px}"
    ".par-scroll{overflow-x:auto;max-width:100%}"
    "table.par{border-collapse:collapse;font-size:13px}"
    "table.par th,table.par td{border:1px solid #bbb;padding:3px 8px;vertical-align:top;"
    "white-space:normal;max-width:22em;overflow-wrap:anywhere}"
    "table.par th{background:#eef1f5;text-align:left}"
    "table.par tr:nth-child(even) td{background:#fafafa}"
    "p.par-note{max-width:60em;color:#444;font-size:13px}"
)


def frame_html(frame: pd.DataFrame) -> str:
    """``frame`` as an HTML table in the report's style; missing values read "–"."""
    return ('<div class="par-scroll">' + frame.to_html(index=False, escape=True, na_rep="–", border=0,
                                                          classes="par") + "</div>")


def html_page(title: str, body: str, notes: list[str] = ()) -> str:
    """A self-contained HTML page: ``title``, ``body`` (HTML), then ``notes`` as paragraphs."""
    import html

    paragraphs = "".join(f'<p class="par-note">{html.escape(n)}</p>' for n in notes if n)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body><h3>{html.escape(title)}</h3>{body}{paragraphs}"
            "</body></html>\n")


def summary_html(summary: pd.DataFrame) -> str:
    """The summary table as one HTML page."""
    return html_page("Summary: every run and seed", frame_html(summary_view(summary)), [SUMMARY_NOTE])


def aggregate_html(aggregate: pd.DataFrame) -> str:
    """The aggregate table (mean ± std over seeds, beside the paper) as one HTML page."""
    return html_page("Aggregate: mean ± std over seeds beside the paper", frame_html(aggregate_view(aggregate)),
                     [AGGREGATE_NOTE + _extractor_note(aggregate.extractor_weights)])


def plan_view(plan: dict, task_labels: dict[int, str]) -> pd.DataFrame:
    """One row per task of a ``plan.json``: its classes, group, strategy, what it
    continues from, the cell its expert uses, s_{t,g*} and the reason (docs/spec.md §3)."""
    rows = []
    for d in plan["tasks"]:
        source = d.get("genotype_source")
        rows.append({
            "task": d["task"], "classes": task_labels.get(d["task"], ""), "group": d["group"],
            "strategy": d["strategy"],
            "continues from": "–" if d.get("predecessor") is None else f"task {d['predecessor']}",
            "cell": "–" if source is None else (source if isinstance(source, str) else f"searched on task {source}"),
            "s (nearest group)": ("–" if d.get("score") is None
                                  else f"{d['score']:.3f} (group {d.get('nearest_group')})"),
            "reason": d.get("reason", ""),
        })
    return pd.DataFrame(rows)


def plan_html(plan: dict, task_labels: dict[int, str]) -> str:
    """The plan of one PAR run as an HTML page: groups, then one row per task."""
    groups = "; ".join(f"group {g}: tasks {', '.join(map(str, tasks))}" for g, tasks in plan["groups"].items())
    settings = plan.get("planning", {})
    note = (f"α = {settings.get('alpha')}, β = {settings.get('beta')}: a task with s ≤ α joins its nearest group "
            "(regularize), one with s > α allocates an expert, searching a new cell when s > β (Eq. 5-6). "
            f"Extractor: {plan.get('extractor_weights', '–')}.")
    title = f"Plan of run {plan['run']} on {plan['benchmark']}, seed {plan['seed']}"
    return html_page(title, f'<p class="par-note">{groups}</p>' + frame_html(plan_view(plan, task_labels)), [note])


def run_summary(metrics: list[pd.DataFrame], aliases: dict[str, str]) -> pd.DataFrame:
    """One row per (benchmark, run, seed) from per-run ``metrics.parquet`` frames
    (possibly none), with the rows of aliased runs under their aliases' names."""
    summary = summary_table(metrics) if metrics else pd.DataFrame(columns=schemas.SUMMARY.names)
    return with_aliases(summary, aliases)


def with_aliases(summary: pd.DataFrame, aliases: dict[str, str]) -> pd.DataFrame:
    """``summary`` plus a copy of the rows of each aliased run under the alias's
    name (a generated run with the same settings as an existing one)."""
    copies = [summary[summary.run == run].assign(run=alias) for alias, run in aliases.items()]
    return pd.concat([summary, *copies], ignore_index=True) if copies else summary
