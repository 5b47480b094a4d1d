"""The environment files agree (issue 27): requirements.lock pins, with hashes, every
package that pyproject.toml, environment.yml and workflow/envs/par.yaml name, at
versions their ranges admit; environment.yml carries the same dependencies as
pyproject.toml and installs with pip; an environment made by ./run holds exactly the
lock; every output records the lock's hash."""
import hashlib
import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from par.infra import provenance, schemas

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
_spec = importlib.util.spec_from_file_location("lockcheck", REPO / "tools" / "lockcheck.py")
lockcheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lockcheck)
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
               if k not in ("snakemake", "snakemake-executor-plugin-slurm", "pytest", "pyyaml", "snakefmt",
                             "tensorboard", "mkdocs-material", "mkdocstrings-python", "playwright")}
    assert conda_requirements(REPO / "workflow/envs/par.yaml") == runtime


@pytest.mark.skipif(sys.platform != "linux", reason="dry-run resolution is checked on Linux")
def test_environment_packages_resolve_with_pip():
    specs = [f"{name}{spec}" for name, spec in conda_requirements().items()]
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", *specs],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


# ---- requirements.lock --------------------------------------------------------------------

def lock_command() -> list[str]:
    """The `uv pip compile` command the lock's header records."""
    header = LOCK.read_text().splitlines()[:3]
    line = next(line for line in header if "pip compile" in line)
    return shlex.split(line.lstrip("# "))


def locked_extras() -> list[str]:
    command = lock_command()
    return [command[i + 1] for i, word in enumerate(command) if word == "--extra"]


def test_lock_pins_every_package_with_hashes_for_linux_python_311():
    command = lock_command()
    assert command[:3] == ["uv", "pip", "compile"] and "--generate-hashes" in command
    assert command[command.index("--python-version") + 1] == "3.11"
    assert command[command.index("--python-platform") + 1] == "x86_64-manylinux_2_28"
    assert command[3:5] == ["pyproject.toml", "tools/lock.in"]
    # CI installs the lock and runs the tests and builds the docs: both extras are in it
    assert {"test", "docs"} <= set(locked_extras())
    pins = lockcheck.read_lock(LOCK)  # raises for an unpinned or hash-less line
    assert len(pins) > 100
    # the releases on this project's machines, never a +cpu local version
    assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")
    # the installer and build backend too: the environment holds nothing the lock does not name
    assert {"pip", "setuptools"} <= set(pins)


def test_read_lock_refuses_unpinned_or_unhashed_lines(tmp_path):
    good = "numpy==2.4.6 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via par\n"
    assert lockcheck.read_lock(write(tmp_path / "ok.txt", good)) == {"numpy": "2.4.6"}
    with pytest.raises(ValueError, match=r"bad.txt:1: not a `name==version` pin"):
        lockcheck.read_lock(write(tmp_path / "bad.txt", "numpy>=2\n"))
    with pytest.raises(ValueError, match=r"2: Py-Yaml is pinned without a --hash"):
        lockcheck.read_lock(write(tmp_path / "nohash.txt", "# header\nPy-Yaml==6.0\n"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_lock_holds_what_pyproject_and_lock_in_ask_for_at_admitted_versions():
    pins = lockcheck.read_lock(LOCK)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requested = list(project["dependencies"])
    for extra in locked_extras():
        requested += project["optional-dependencies"][extra]
    requested += [line for line in (REPO / "tools/lock.in").read_text().splitlines()
                  if line.strip() and not line.startswith("#")]
    for text in requested:
        req = Requirement(text)
        name = lockcheck.normalise(req.name)
        assert name in pins, f"{req.name} (pyproject.toml or tools/lock.in) is not in the lock: ./run lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{req.name}: the lock's {pins[name]} is outside {req.specifier}: ./run lock"
        for extra in req.extras:  # mkdocstrings[python] brings mkdocstrings-python
            assert f"{name}-{extra}" in pins, f"{text}: the lock lacks {name}-{extra}"


def conda_specifier(spec: str) -> SpecifierSet:
    """A conda version spec as a PEP 440 specifier set (conda's fuzzy `=1.2` is `==1.2.*`)."""
    spec = spec.strip()
    if re.fullmatch(r"=[^=<>!].*", spec):
        spec = f"=={spec[1:]}.*"
    return SpecifierSet(spec.replace(" ", ""))


@pytest.mark.parametrize("path", ["environment.yml", "workflow/envs/par.yaml"])
def test_conda_environments_admit_the_locked_versions(path):
    pins = lockcheck.read_lock(LOCK)
    for name, spec in conda_requirements(REPO / path).items():
        name = lockcheck.normalise(name)
        assert name in pins, f"{path} names {name}, which the lock does not"
        assert conda_specifier(spec).contains(pins[name], prereleases=True), \
            f"{path}: {name}{spec} excludes the locked {pins[name]}"


def test_conda_specifier():
    assert conda_specifier(">=2.2").contains("2.14.1")
    assert conda_specifier("=2.14").contains("2.14.1") and not conda_specifier("=2.14").contains("2.15.0")
    assert not conda_specifier("==2.13.0").contains("2.14.1")


def test_compare_names_each_difference():
    assert lockcheck.compare({"a": "1", "b": "2"}, {"a": "1", "b": "2"}) == []
    assert lockcheck.compare({"a": "1", "extra": "3"}, {"a": "2", "b": "2"}) == [
        "a: installed 1, locked 2", "b: installed nothing, locked 2", "extra: installed 3, locked nothing"]
    assert lockcheck.parse_freeze(["Foo_Bar==1.0", "pip==26.3"]) == {"foo-bar": "1.0", "pip": "26.3"}
    with pytest.raises(ValueError, match="pinned release"):
        lockcheck.parse_freeze(["foo @ file:///tmp/foo"])


def test_an_environment_made_by_run_holds_exactly_the_lock():
    """Where ./run made this environment (it writes the lock's sha256 into
    <venv>/.par-lock), every installed distribution is at the locked version and
    nothing else is installed but this project."""
    stamp = Path(sys.prefix) / ".par-lock"
    if not stamp.is_file():
        pytest.skip(f"{sys.prefix} was not made by ./run (no .par-lock)")
    assert stamp.read_text().strip() == hashlib.sha256(LOCK.read_bytes()).hexdigest(), \
        "requirements.lock changed since this environment was made: ./run env"
    installed = {lockcheck.normalise(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed.pop("par-pipeline")
    assert lockcheck.compare(installed, lockcheck.read_lock(LOCK)) == []


# ---- the lock in each output's provenance --------------------------------------------------

def test_provenance_records_the_lock_hash(tmp_path):
    assert provenance.LOCK_FILE == REPO / "requirements.lock"
    record = provenance.provenance({"code": "sha256:x", "epochs": 1}, "cpu")
    assert set(record) == set(schemas.PROVENANCE) - {"upstream"}
    assert record["lock"] == "sha256:" + hashlib.sha256(LOCK.read_bytes()).hexdigest()
    other = write(tmp_path / "requirements.lock", "numpy==1\n")
    assert provenance.lock_hash(other) == "sha256:" + hashlib.sha256(b"numpy==1\n").hexdigest()
    assert provenance.lock_hash(tmp_path / "absent.lock") is None
    upstream = provenance.upstream_of([{**record, "lock": "sha256:b"}, {**record, "lock": None},
                                       {**record, "lock": "sha256:a", "upstream": {"lock": ["sha256:b"]}}])
    assert upstream["lock"] == ["sha256:a", "sha256:b"] and set(upstream) == set(schemas.PROVENANCE_UPSTREAM)


# ---- Python 3.11 before 3.11.4 (Debian 12's python3 is 3.11.2) -----------------------------

def write_archive(path: Path, members: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_archives_extract_without_extraction_filters(tmp_path, monkeypatch):
    """Where tarfile has no filter="data" (Python < 3.11.4), the files are extracted
    all the same and a name leaving the target folder is refused."""
    import tarfile

    from par.streams.datasets.sources import DatasetUnavailable
    from par.streams.datasets.image_folder import extracted

    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    good = write_archive(tmp_path / "good.tar.gz", {"d/train/cat/1.png": b"x", "d/test/cat/2.png": b"yz"})
    tmp = extracted(good, tmp_path)
    assert (Path(tmp.name) / "d/test/cat/2.png").read_bytes() == b"yz"
    assert sorted(p.name for p in Path(tmp.name).rglob("*.png")) == ["1.png", "2.png"]
    tmp.cleanup()
    evil = write_archive(tmp_path / "evil.tar.gz", {"d/../../escaped.png": b"x"})
    with pytest.raises(DatasetUnavailable, match="outside the target folder"):
        extracted(evil, tmp_path)
    assert not (tmp_path.parent / "escaped.png").exists()


# ---- ./run makes the environment from the lock ----------------------------------------------

# six, and setuptools to build the checkout without build isolation (as requirements.lock)
SIX_LOCK = """\
setuptools==84.2.1 \\
    --hash=sha256:3ff8b3b5492a0aa66960f4419365a86b84e013070d4313e4d4a6894f5d64d6bc \\
    --hash=sha256:ca140b45d5325a9478f880e351484f62fef15f336462e449ca0c03c873d589c2
six==1.16.0 \\
    --hash=sha256:1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926 \\
    --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254
"""


def run_script(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(folder / "run"), *args], capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "PYTHON": sys.executable})


@pytest.mark.skipif(sys.platform != "linux", reason="./run is for Linux")
def test_run_makes_the_environment_from_the_lock_once_and_again_when_it_changes(tmp_path):
    """./run env on a checkout whose lock pins two packages (from PyPI): .venv
    holds exactly the lock and the project (editable), the stamp holds the lock's
    sha256; a second call installs nothing; a new lock makes .venv again; a .venv
    that ./run did not make is left alone."""
    (tmp_path / "run").write_bytes((REPO / "run").read_bytes())
    (tmp_path / "requirements.lock").write_text(SIX_LOCK)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "tiny"\nversion = "1"\n'
                                             '[tool.setuptools]\npy-modules = ["tiny"]\n')
    (tmp_path / "tiny.py").write_text("X = 1\n")
    result = run_script(tmp_path, "env")
    assert result.returncode == 0, result.stderr[-3000:]
    venv = tmp_path / ".venv"
    assert (venv / ".par-lock").read_text().strip() == hashlib.sha256(SIX_LOCK.encode()).hexdigest()
    assert not (venv / ".par-building").exists()
    freeze = subprocess.run([venv / "bin/python", "-m", "pip", "freeze", "--all"], capture_output=True,
                            text=True).stdout
    assert lockcheck.compare(lockcheck.parse_freeze([line for line in freeze.splitlines()
                                                     if not line.startswith(("#", "-e", "pip=="))]),
                             lockcheck.read_lock(tmp_path / "requirements.lock")) == []
    assert "tiny" in freeze  # the checkout, editable
    marker = venv / "made-before"
    marker.write_text("")
    assert run_script(tmp_path, "env").returncode == 0 and marker.exists()  # up to date: untouched

    (tmp_path / "requirements.lock").write_text("# a new lock\n" + SIX_LOCK)
    result = run_script(tmp_path, "env")
    assert result.returncode == 0 and "changed since .venv was made" in result.stderr
    assert not marker.exists()
    assert (venv / ".par-lock").read_text().strip() == lockcheck_sha(tmp_path / "requirements.lock")

    (venv / ".par-lock").unlink()  # a .venv made by hand
    result = run_script(tmp_path, "env")
    assert result.returncode == 1 and "was not made from requirements.lock by ./run" in result.stderr
    assert (venv / "bin/python").exists()


def lockcheck_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_without_a_command_prints_its_usage():
    result = subprocess.run(["sh", str(REPO / "run")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "./run demo" in result.stderr and "./run test" in result.stderr and "./run lock" in result.stderr
