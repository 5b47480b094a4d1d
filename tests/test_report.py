"""`snakemake all_tables --report` right after a demo-sized tiny run (the shared tiny run of
every method) shows what the run made: summary and aggregate tables, the distance heatmap, the plan of the PAR
run, the accuracy matrix of every run and AP vs parameters; no rendered table reads NaN."""
from __future__ import annotations

import re

import pytest

from test_workflow import fork, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def tiny_run(full_run, tmp_path_factory):
    """A copy of the shared tiny run of every method (conftest ``full_run``)."""
    return fork(full_run, tmp_path_factory.mktemp("report")), full_run[1]


def test_all_tables_report_shows_every_item_of_the_run(tiny_run):
    workdir, config = tiny_run
    result = snakemake(workdir, config, "all_tables", "--report", "report.html")
    assert result.returncode == 0, result.stderr[-4000:]
    html = (workdir / "report.html").read_text()
    for item in ("summary.html", "aggregate.html", "ap_vs_parameters.png", "distances/cifar10-5-seed0.png",
                 "plans/cifar10-5-seed0-par.html", "accuracy/cifar10-5-seed0-par.png",
                 "accuracy/cifar10-5-seed0-finetune.png", "Relatedness", "Plans", "Accuracy matrices", "Summary"):
        assert item in html, item
    # the demo configures no paper benchmark: the description names what `paper` leaves out and why
    assert "table1: none of its benchmarks" in html and "fig6: none of" in html


def test_rendered_tables_have_no_nan_and_one_style(tiny_run):
    workdir, _ = tiny_run
    res = workdir / "results/tables"
    pages = [res / "summary.html", res / "aggregate.html", *sorted((res / "plans").glob("*.html"))]
    for path in [*pages, res / "summary.md", res / "aggregate.md"]:
        text = path.read_text()
        assert not re.search(r"\bnan\b", text, re.IGNORECASE), path
        assert "unused" not in text, path  # baselines use no extractor: "–", not "unused"
    for page in pages:
        text = page.read_text()
        assert 'class="par-scroll"' in text and "table.par" in text, page
        assert "AP_mean" not in text and "M_millions" not in text, page
    plan = (res / "plans/cifar10-5-seed0-par.html").read_text()
    # alpha = beta = 1 in TINY: every task joins group 1; tasks are named by their classes
    assert "group 1: tasks 1, 2, 3, 4, 5" in plan and "regularize" in plan and "cifar10:" in plan


def test_paper_table_html_has_no_nan_for_methods_without_a_run(tiny_run):
    import pandas as pd

    from par.paper.render import table_html
    from par.results.tables import run_summary
    from par.paper.targets import load_targets, table_cells

    workdir, _ = tiny_run
    summary = run_summary([pd.read_parquet(p) for p in (workdir / "results/runs").glob("*/seed*/*/metrics.parquet")], {})
    cells = table_cells(load_targets(), summary, 1)
    page = table_html("Table 1", cells)
    assert not re.search(r"\bnan\b", page, re.IGNORECASE) and "–" in page
