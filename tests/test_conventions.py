"""The Snakemake ecosystem's conventions: `snakefmt --check` changes nothing (settings:
pyproject.toml's [tool.snakefmt]) and the files the Snakemake workflow catalog reads are
there.  `snakemake --lint` is tests/test_lint.py's."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_snakefmt_check_is_clean():
    try:
        import snakefmt  # noqa: F401  (in the test extra and requirements.lock)
    except ImportError:
        pytest.fail("snakefmt is not installed: `./run test` installs requirements.lock, or pip install snakefmt")
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        "snakefmt would change files: run `snakefmt Snakefile workflow/`\n" + result.stderr[-3000:])


def test_snakefmt_settings_keep_the_written_order_and_line_length():
    """snakefmt reads [tool.snakefmt] of pyproject.toml: the code's 120 columns, and no
    sorting of directives (which would move a rule's docstring below its input)."""
    import tomllib

    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["snakefmt"]
    assert settings == {"line_length": 120, "sort_directives": False}


def test_workflow_catalog_files():
    """The files the Snakemake workflow catalog reads for standardized usage, and
    flags that say only what is true."""
    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment"}
    assert usage["mandatory-flags"]["desc"] and isinstance(usage["mandatory-flags"]["flags"], list)
    stack = usage["software-stack-deployment"]
    assert set(stack) == {"conda", "apptainer", "apptainer+conda", "report"}
    rules = "".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))
    assert not stack["apptainer"] and not stack["apptainer+conda"] and "container:" not in rules
    assert stack["report"] and "report:" in (REPO / "Snakefile").read_text()
    assert (REPO / "config/config.yaml").is_file()
    readme = (REPO / "config/README.md").read_text()
    assert "../docs/reference/config.md" in readme
    for name in ("config.yaml", "demo.yaml", "results_dir", "data_root", "benchmarks", "seeds", "runs"):
        assert name in readme, name
