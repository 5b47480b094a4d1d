"""The report's landing blocks (par.results.report) from a run's own table files."""
import base64

from par.results.report import LANDING_MARKER, figure_uri, landing_rst, summary_html

PAGE = ("<html><head><style>table{border:1px} td, th{padding:2px}</style></head>"
        "<body><table>\n<tr><td>par</td><td>0.805</td></tr>\n<tr><td>finetune</td><td>0.541</td></tr>\n"
        "</table></body></html>")


def test_summary_html_scopes_the_style_and_keeps_one_row_per_line():
    html = summary_html(PAGE)
    assert "#par-landing table{border:1px}" in html and "#par-landing td, #par-landing th{padding:2px}" in html
    assert "<div id='par-landing' class='par-summary'>" in html and html.endswith("</div>")
    rows = [line for line in html.splitlines() if "<td>" in line]
    assert len(rows) == 2 and rows[0].endswith("<table> <tr><td>par</td><td>0.805</td></tr>")
    assert rows[1] == " <tr><td>finetune</td><td>0.541</td></tr>"


def test_figure_uri_is_the_png_in_short_lines():
    png = bytes(range(256)) * 3
    uri = figure_uri(png)
    head, *lines = uri.split("\n")
    assert head == "data:image/png;base64,"
    assert all(len(line) <= 76 for line in lines) and base64.b64decode("".join(lines)) == png


def test_landing_rst_from_the_run_tables(tmp_path):
    assert "not made yet" in landing_rst(tmp_path)
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "summary.html").write_text(PAGE)
    text = landing_rst(tmp_path)
    assert "**Results of this run.**" in text and ".. raw:: html" in text and "AP against parameters" not in text
    assert "    <tr><td>finetune</td><td>0.541</td></tr>" in text.splitlines()  # indented under the directive
    (tables / "ap_vs_parameters.png").write_bytes(b"\x89PNG fake")
    text = landing_rst(tmp_path)
    assert "**AP against parameters**" in text and base64.b64encode(b"\x89PNG fake").decode() in text
    assert LANDING_MARKER.startswith(".. ")  # an rst comment where nothing replaces it
