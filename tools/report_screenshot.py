"""Open pages in headless Chromium: the HTML report's landing page (and its screenshot), the docs site.

    python tools/report_screenshot.py report.html --out docs/images/report-landing.png

opens a report made by ``snakemake all_tables --report report.html …``, checks that its
landing page shows the run's summary table, and saves a screenshot of the page. The CPU-demo
tutorial's picture is made this way from a real demo run (docs/tutorials/cpu-demo.md), and
tests/test_docs.py opens the tiny test run's report and the built docs site with the same
functions.

Chromium is Debian's package (``apt-get install chromium``), driven through the DevTools
protocol by playwright, which downloads no browser of its own here.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SUMMARY_HEADING = "Summary: every run and seed"  # par.results.tables.summary_html's title


def chromium_path() -> str | None:
    """Debian's Chromium executable, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def why_no_browser() -> str | None:
    """None when a browser test can run here, else the reason it cannot."""
    if chromium_path() is None:
        return "Debian's chromium is not installed (apt-get install chromium; .ci/run installs it as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@contextlib.contextmanager
def browser() -> Iterator:
    """A headless Chromium (a fresh profile in a temporary folder), closed on exit.
    Raises RuntimeError with :func:`why_no_browser`'s reason when none can start."""
    reason = why_no_browser()
    if reason:
        raise RuntimeError(reason)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="par-chromium-") as profile, sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True,
            viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


@dataclass
class Visit:
    """What a page did while it loaded: console errors and uncaught exceptions."""
    url: str
    errors: list[str] = field(default_factory=list)


def open_page(context, url: str, wait_for: str | None = None, timeout_ms: int = 30_000):
    """Open ``url`` in a new tab, wait for the network to settle (and for the CSS
    selector ``wait_for``); returns (page, :class:`Visit`) with every console error and
    uncaught exception the page raised."""
    page = context.new_page()
    visit = Visit(url)
    page.on("console", lambda message: visit.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: visit.errors.append(f"uncaught: {error}"))
    page.goto(url, wait_until="networkidle", timeout=timeout_ms)
    if wait_for:
        page.wait_for_selector(wait_for, timeout=timeout_ms)
    return page, visit


def report_landing(context, report: Path):
    """Open a Snakemake HTML report on its landing page; returns (page, visit, landing text).
    Raises AssertionError when the landing page does not show the run's summary table."""
    page, visit = open_page(context, Path(report).resolve().as_uri(), wait_for="#par-landing table")
    text = page.inner_text("#par-landing")
    if SUMMARY_HEADING not in text:
        raise AssertionError(f"{report}: the landing page shows no summary table ({text[:200]!r})")
    return page, visit, text


def screenshot_report(report: Path, out: Path) -> str:
    """Save a screenshot of the report's landing page to ``out`` (PNG, atomically);
    returns the landing page's text."""
    from par.infra.io import atomic_path

    with browser() as context:
        page, _, text = report_landing(context, report)
        page.set_viewport_size({"width": 1280, "height": 1200})  # the summary table and the figure
        page.evaluate("window.scrollTo(0, 0); document.querySelectorAll('*').forEach(e => { e.scrollTop = 0; })")
        page.mouse.move(600, 400)
        page.mouse.wheel(0, -20_000)
        page.wait_for_timeout(300)
        with atomic_path(out) as tmp:
            page.screenshot(path=str(tmp), full_page=False, type="png")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="an HTML report, e.g. report.html")
    parser.add_argument("--out", type=Path, default=Path("docs/images/report-landing.png"))
    args = parser.parse_args(argv)
    if not args.report.is_file():
        parser.error(f"{args.report} does not exist: make it with snakemake all_tables --report {args.report} …")
    text = screenshot_report(args.report, args.out)
    print(f"{args.out}: landing page of {args.report}\n{text[:400]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
