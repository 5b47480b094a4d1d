"""The documentation (issue 26): the site builds in strict mode, its generated reference
lists every config key, stream-spec key and Parquet column of the code, every page opens in
headless Chromium without a console error, the search finds a config key, and the HTML
report of a finished run opens on its summary table.

The browser tests need Debian's ``chromium`` and the ``playwright`` package (``.ci/run``
installs both); where either is missing they are skipped with the reason.
"""
from __future__ import annotations

import functools
import http.server
import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "docs"))

import report_screenshot  # noqa: E402  (tools/report_screenshot.py)

NO_BROWSER = report_screenshot.why_no_browser()
needs_browser = pytest.mark.skipif(NO_BROWSER is not None, reason=str(NO_BROWSER))


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site built by ``mkdocs build --strict`` (any warning, e.g. a broken link or
    anchor, fails the build) into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return out


def schema_keys(schema: dict, node: dict, prefix: str = "") -> set[str]:
    """Every key of a JSON schema as a dotted path, following local $refs: written here
    independently of docs/hooks.py, so the comparison below checks the generator."""
    if "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **node}
    keys = set()
    for name, child in node.get("properties", {}).items():
        keys.add(prefix + name)
        keys |= schema_keys(schema, child, f"{prefix}{name}.")
        for holder, infix in (("items", "[]."), ("additionalProperties", ".<name>.")):
            if isinstance(child.get(holder), dict):
                keys |= schema_keys(schema, child[holder], f"{prefix}{name}{infix}")
    return keys


def page_codes(page: Path) -> set[str]:
    """The text of every ``<code>`` element of a built page."""
    import html
    import re

    return {html.unescape(c) for c in re.findall(r"<code>(.*?)</code>", page.read_text(), re.S)}


def test_site_builds_in_strict_mode(site):
    for page in ("index.html", "reference/config/index.html", "tutorials/cpu-demo/index.html",
                 "how-to/add-a-method/index.html", "reference/api/index.html", "search/search_index.json"):
        assert (site / page).is_file(), page


def test_config_reference_lists_every_key_of_the_schema(site):
    from par.infra.config import load_schema

    schema = load_schema()
    keys = schema_keys(schema, schema)
    assert {"results_dir", "planning.alpha", "runs.<name>.method", "runs.<name>.planning.alpha",
            "datasets.<name>.path", "eval_batch_size.cpu"} <= keys  # the walk reaches every level
    listed = page_codes(site / "reference/config/index.html")
    missing = sorted(keys - listed)
    assert not missing, f"keys of load_schema() missing from the config reference: {missing}"


def test_config_reference_rows_carry_the_schema_values(site):
    import hooks  # docs/hooks.py

    text = hooks.config_keys()
    row = next(line for line in text.splitlines() if line.startswith("| `planning.alpha` |"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells[1:4] == ["number", "`0.5`", "≥ 0, ≤ 1"], cells
    assert "plan" in cells[5]
    data_root = next(line for line in text.splitlines() if line.startswith("| `data_root` |"))
    assert "nothing" in data_root  # moving the data re-computes nothing
    # a method section that the re-run table does not name (declared by a method class) still gets a text
    assert hooks.reruns_of("runs.<name>.si.c") == hooks.METHOD_SECTION_RERUNS + ", for that run only"
    assert hooks.reruns_of("ewc.lambda") == hooks.RERUNS["ewc"]
    with pytest.raises(KeyError, match="no-such"):
        hooks.render("<!-- generated: no-such -->")


def test_stream_spec_and_parquet_references_list_every_key_and_column(site):
    import pyarrow as pa
    import yaml

    from par.infra import schemas

    stream_schema = yaml.safe_load((REPO / "par/data/streams/stream.schema.yaml").read_text())
    listed = page_codes(site / "reference/stream-spec/index.html")
    assert not sorted(schema_keys(stream_schema, stream_schema) - listed)
    listed = page_codes(site / "reference/outputs/index.html")
    for name, value in vars(schemas).items():
        if isinstance(value, pa.Schema):
            assert name in listed and not set(value.names) - listed, name
    assert set(schemas.PROVENANCE) <= listed


def test_readme_is_short_and_restates_no_config_table():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "| key |" not in readme and "python -m pytest\n" in readme
    assert 'python -m pytest -m "not workflow and not slurm"' in readme
    assert (REPO / "docs/images/rulegraph.svg").is_file()


def test_shared_data_archive_is_read_as_the_tests_read_it(tmp_path):
    """tools/shared_data.py writes the layout tests/conftest.py extracts."""
    from PIL import Image

    import shared_data  # tools/shared_data.py
    from conftest import write_cifar10_slice

    members = [(f"cifar10-jpg/{split}/{cls}/{i:04d}.jpg", Image.new("RGB", (32, 32), (40 * i, 10, 200)))
               for split in ("train", "test") for cls in ("cat", "dog") for i in range(3)]
    digest = shared_data.write_archive(members, tmp_path / "cifar10-jpg.tar.gz", "JPEG")
    assert len(digest) == 64
    root = write_cifar10_slice(tmp_path / "cifar10-jpg.tar.gz", tmp_path / "tree", {"train": 2, "test": 1})
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) == [
        "test/cat/0000.jpg", "test/dog/0000.jpg",
        "train/cat/0000.jpg", "train/cat/0001.jpg", "train/dog/0000.jpg", "train/dog/0001.jpg"]
    assert Image.open(root / "train/cat/0001.jpg").size == (32, 32)


@pytest.fixture(scope="module")
def served_site(site):
    """The built site over HTTP on a free local port (the search loads its index with fetch)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@needs_browser
def test_every_page_opens_without_a_console_error_and_search_finds_a_config_key(site, served_site):
    pages = sorted(p.relative_to(site).parent.as_posix() for p in site.rglob("index.html"))
    assert len(pages) >= 20, pages
    failures = {}
    with report_screenshot.browser() as context:
        for path in pages:
            page, visit = report_screenshot.open_page(context, served_site + ("" if path == "." else path + "/"),
                                                      wait_for="article")
            if visit.errors:
                failures[path] = visit.errors
            page.close()
        page, visit = report_screenshot.open_page(context, served_site, wait_for="article")
        search = page.locator("input.md-search__input")
        search.click()
        search.press_sequentially("head_only_ratio", delay=20)  # typed, as a reader would
        page.wait_for_selector(".md-search-result__item", timeout=30_000)
        results = page.inner_text(".md-search-result")
        links = page.eval_on_selector_all(".md-search-result__item a", "links => links.map(a => a.href)")
        assert visit.errors == []
    assert not failures, failures
    assert "planning.head_only_ratio" in results and "/reference/config/" in links[0], (results[:500], links)


@pytest.fixture(scope="module")
def report(full_run, tmp_path_factory):
    """``snakemake all_tables --report report.html`` of a copy of the shared tiny run."""
    from test_workflow import fork, snakemake

    workdir = fork(full_run, tmp_path_factory.mktemp("docs-report"))
    result = snakemake(workdir, full_run[1], "all_tables", "--report", "report.html")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.mark.workflow
def test_report_description_leads_with_the_runs_summary_table(report):
    html = (report / "report.html").read_text()
    start = html.index("Results of this run")
    assert start < html.index("AP against parameters") < html.index("Paper targets that this configuration")
    assert "Summary: every run and seed" in html[start:] and "data:image/png;base64," in html


@pytest.mark.workflow
@needs_browser
def test_report_opens_on_the_summary_table(report, tmp_path):
    import pandas as pd

    summary = pd.read_parquet(report / "results/tables/summary.parquet")
    with report_screenshot.browser() as context:
        page, visit, text = report_screenshot.report_landing(context, report / "report.html")
        image = page.locator("img[alt^='AP against parameter count']")
        assert image.count() == 1 and image.evaluate("img => img.naturalWidth") > 100
        page.screenshot(path=str(tmp_path / "landing.png"))
    for run in summary.run:
        assert run in text, run
    assert f"{summary.set_index('run').AP['par']:.3f}"[:4] in text
    assert (tmp_path / "landing.png").stat().st_size > 10_000


@pytest.mark.workflow
def test_demo_results_fragment_is_generated_from_the_runs_files(report):
    import pandas as pd

    import demo_results  # tools/demo_results.py

    results = report / "results"
    text = demo_results.fragment(results, "python tools/demo_results.py results")
    summary = pd.read_parquet(results / "tables/summary.parquet")
    first_table = next(block for block in text.split("\n\n") if block.startswith("|"))
    table = pd.read_csv(io.StringIO("\n".join(line.strip("|") for line in first_table.splitlines()
                                              if "---" not in line)), sep="|")
    table.columns = [c.strip() for c in table.columns]
    assert sorted(table.run.str.strip()) == sorted(summary.run)
    assert table.AP.tolist() == pytest.approx(summary.set_index("run").AP[table.run.str.strip()].tolist(), abs=5e-4)
    assert "every code hash of the run is this checkout's" in text  # the tiny run was made by this code
    assert "`par` on cifar10-5 seed0: group 1 = tasks" in text
    with pytest.raises(FileNotFoundError, match="has not finished"):
        demo_results.fragment(report / "nothing", "x")
