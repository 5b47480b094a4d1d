"""Every `snakemake …` command shown in README.md, the docs site's pages (docs/**/*.md),
the Snakefile's docstring and the header comments of config/*.yaml parses and dry-runs.

The commands run as written, from a folder laid out like the repository (Snakefile,
workflow/, profiles/ linked) whose config/*.yaml are the tiny real-data config of
tests/test_workflow.py: what is checked is the command line (target and option order,
profiles, targets that exist), not the scale.  Report commands need finished outputs:
tests/test_report.py builds the report after a tiny run.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from test_workflow import config_for

REPO = Path(__file__).resolve().parents[1]
# Shown on purpose as the order that does NOT work (README, "Put the target first").
SHOWN_AS_WRONG = {"snakemake --configfile config/demo.yaml all_tables"}


# Pages whose commands run elsewhere than in this checkout: the module how-to's run in a
# project that imports the workflow as a Snakemake module (tests/test_module.py runs them there).
RUN_ELSEWHERE = {"docs/how-to/use-as-module.md"}


def markdown_sources() -> list[Path]:
    """README.md and every page of the docs site (but :data:`RUN_ELSEWHERE`)."""
    return [REPO / "README.md", *sorted(p for p in (REPO / "docs").rglob("*.md")
                                        if str(p.relative_to(REPO)) not in RUN_ELSEWHERE)]


def shown_commands() -> list[str]:
    """`snakemake …` commands of code blocks and inline code in README.md and the docs
    pages, of the Snakefile's docstring and of the comments of config/*.yaml.  A command
    piped into another (``… --rulegraph | dot …``) is checked up to the pipe."""
    found = []
    for source in markdown_sources():
        text = source.read_text()
        found += re.findall(r"^(?: {4,}|\t+)(snakemake [^\n#]*)", text, re.M)
        found += re.findall(r"`(snakemake [^`]*)`", text)
    docstring = (REPO / "Snakefile").read_text().split('"""')[1]
    found += re.findall(r"^ {4}(snakemake [^\n#]*)", docstring, re.M)
    for config in sorted((REPO / "config").glob("*.yaml")):
        found += re.findall(r"^#\s+(snakemake [^\n#]*)", config.read_text(), re.M)
    commands = []
    for command in found:
        command = command.split(" | ")[0].strip()
        # a placeholder (<args>, …) or a flag without a target is prose, not a command to run
        if any(c in command for c in "<…") or command in SHOWN_AS_WRONG or command in commands:
            continue
        if command.split()[1].startswith("-") and "--unlock" not in command and "-n" not in command.split():
            continue
        commands.append(command)
    return commands


def test_the_extraction_finds_the_commands_of_every_source():
    commands = shown_commands()
    assert "snakemake all_tables --cores 2 --configfile config/demo.yaml" in commands
    assert "snakemake all_tables --cores 8 --resources gpu=2" in commands  # config/config.yaml, Snakefile
    assert any("config/paper-all.yaml" in c for c in commands)
    assert any("--report" in c for c in commands)
    assert not any(c.startswith("snakemake --cores") for c in commands), commands


def shown_config_files() -> list[str]:
    """The ``printf '…' > name.yaml`` commands of README.md and the docs pages that write a
    config file a later command lays over a shipped one."""
    found = []
    for source in markdown_sources():
        found += re.findall(r"^[ \t]*(printf '[^'\n]*' > [\w.-]+\.yaml)$", source.read_text(), re.M)
    return list(dict.fromkeys(found))


def test_the_extraction_finds_the_commands_of_the_docs_site():
    commands = shown_commands()
    assert "snakemake all_tables --cores 2 --configfile config/demo-mixed.yaml" in commands  # README, tutorial
    assert "snakemake all_tables --configfile config/demo-mixed.yaml --rulegraph" in commands  # cut at the pipe
    assert "snakemake all_tables --profile workflow/profiles/slurm" in commands  # docs/how-to/slurm.md
    assert any(c.startswith("snakemake fig3 ") for c in commands)  # docs/how-to/sweeps-and-ablation.md
    assert any("demo-alpha.yaml" in c for c in shown_config_files())


def test_every_shown_command_dry_runs(cifar10_slice, tmp_path):
    tiny = config_for(cifar10_slice)
    tiny["runs"] = {"par": {"method": "par"}, "finetune": {"method": "finetune"}}
    for name in ("Snakefile", "workflow", "profiles", "par"):
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / "config").mkdir()
    for config in (REPO / "config").glob("*.yaml"):
        (tmp_path / "config" / config.name).write_text(yaml.safe_dump(tiny))
    (tmp_path / "demo-alpha.yaml").write_text("planning:\n  alpha: 0.5\n")  # README: printf … > demo-alpha.yaml
    for command in shown_config_files():  # the docs' `printf '…' > x.yaml`, as written
        subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, timeout=30)
    failures = []
    for command in shown_commands():
        if "--report" in command:
            continue
        if "--logger rich" in command and importlib.util.find_spec("snakemake_logger_plugin_rich") is None:
            continue  # the optional Rich logger (README, "Watching a run") is not installed here
        argv = shlex.split(command)
        if "--unlock" not in argv:
            argv += ["--dry-run"]
        if "--profile" in argv:  # the SLURM profile submits; a dry-run only plans
            argv += ["--executor", "local"]
        result = subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, capture_output=True, text=True,
                                timeout=300, env={**os.environ, "PAR_OFFLINE": "1"})
        if result.returncode != 0:
            failures.append(f"{command}\n{(result.stdout + result.stderr)[-1500:]}")
    assert not failures, "\n\n".join(failures)
