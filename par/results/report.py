"""The landing page of Snakemake's HTML report: this run's summary table and its
AP-against-parameters figure, read from the finished run's own files.

The report's description (``workflow/report/workflow.rst``) holds the line
:data:`LANDING_MARKER`; the workflow replaces it with :func:`landing_rst` of the
results folder, so the report opens on the run (its tables exist once
``snakemake all_tables`` has run).  Torch-free: the workflow calls it while parsed.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

LANDING_MARKER = ".. par-landing: the summary table and AP against parameters of this run go here"

_SUMMARY_CAPTION = (
    "**Results of this run.** AP and AF are fractions (Eq. 11; AF ≤ 0 is forgetting), M the parameters of\n"
    "every expert or backbone and head in millions, T the summed wall time of the run's learn and search\n"
    "jobs. Made by rule ``tables`` from each run's ``metrics.parquet``; also in ``tables/summary.md``.\n")
_FIGURE_CAPTION = (
    "**AP against parameters** (one marker per run and seed, every benchmark; made by rule ``tables``\n"
    "from the same metrics, ``tables/ap_vs_parameters.png``). Up and to the left is better: high AP\n"
    "with few parameters.\n")
# The report centres its landing page vertically, which hides the top of a page taller than the
# window (the summary table): start it at the top; widen its narrow text column.
_LANDING_STYLE = ("div.items-center:has(#par-landing){align-items:flex-start}"
                  "div.prose:has(#par-landing){max-width:72rem}")


def summary_html(page: str) -> str:
    """The body of ``tables/summary.html`` (``page``, a whole HTML page) as one HTML
    fragment for the landing page: its style rules scoped to ``#par-landing``, one
    table row per line (docutils' raw blocks keep lines)."""
    body = re.search(r"<body>(.*)</body>", page, re.S)
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    rules = re.sub(r"(^|\})\s*([^{}]+)\{", lambda m: m.group(1) + ", ".join(
        f"#par-landing {s.strip()}" for s in m.group(2).split(",")) + "{", style.group(1)) if style else ""
    return (f"<style>{_LANDING_STYLE}{rules}</style><div id='par-landing' class='par-summary'>"
            + (body.group(1) if body else page).replace("\n", " ").replace("</tr>", "</tr>\n") + "</div>")


def figure_uri(png: bytes) -> str:
    """``png`` as a ``data:`` URI broken into 76-character lines: the one-file report
    needs no other file, and docutils refuses lines over 10 000 characters (a URL
    parser drops the line breaks)."""
    encoded = base64.b64encode(png).decode()
    return "data:image/png;base64,\n" + "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


def _raw_html(html: str) -> str:
    return ".. raw:: html\n\n" + "".join(f"   {line}\n" for line in html.splitlines()) + "\n"


def landing_rst(results_dir: str | Path) -> str:
    """reStructuredText of the landing page's first blocks: the summary table of
    ``<results_dir>/tables/summary.html`` and the figure ``tables/ap_vs_parameters.png``,
    each with its caption; a sentence saying how to make them where they are missing."""
    tables = Path(results_dir, "tables")
    summary, figure = tables / "summary.html", tables / "ap_vs_parameters.png"
    if not summary.is_file():
        return ("The summary table is not made yet: run ``snakemake all_tables`` with the same "
                "options first.\n\n")
    text = _SUMMARY_CAPTION + "\n" + _raw_html(summary_html(summary.read_text()))
    if figure.is_file():
        text += _FIGURE_CAPTION + "\n" + _raw_html(
            '<img alt="AP against parameter count M, one marker per run and seed" style="max-width:100%" '
            f'src="{figure_uri(figure.read_bytes())}">')
    return text
