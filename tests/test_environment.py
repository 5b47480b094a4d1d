"""environment.yml carries the same dependencies as pyproject.toml and installs with pip."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# conda package name -> PyPI name
CONDA_TO_PYPI = {"pytorch": "torch", "snakemake-minimal": "snakemake"}


def conda_requirements(path: Path = REPO / "environment.yml") -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    reqs = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict) or dep.startswith(("python", "pip")):
            continue
        name, spec = re.match(r"([A-Za-z0-9_.-]+)(.*)", dep).groups()
        reqs[CONDA_TO_PYPI.get(name, name)] = spec
    return reqs


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["test"]
    return dict(re.match(r"([A-Za-z0-9_.-]+)(.*)", d).groups() for d in deps)


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["name"] == "par" and "conda-forge" in env["channels"] and "bioconda" in env["channels"]
    assert conda_requirements() == pyproject_requirements()
    assert {"-e ."} <= set(next(d for d in env["dependencies"] if isinstance(d, dict))["pip"])


def test_rule_environment_is_the_runtime_part_of_environment_yml():
    runtime = {k: v for k, v in conda_requirements().items()
               if k not in ("snakemake", "snakemake-executor-plugin-slurm", "pytest", "pyyaml",
                             "mkdocs-material", "mkdocstrings-python", "playwright")}
    assert conda_requirements(REPO / "workflow/envs/par.yaml") == runtime


@pytest.mark.skipif(sys.platform != "linux", reason="dry-run resolution is checked on Linux")
def test_environment_packages_resolve_with_pip():
    specs = [f"{name}{spec}" for name, spec in conda_requirements().items()]
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", *specs],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
