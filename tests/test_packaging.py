"""``pip install .`` gives a working library: the wheel carries every module and
the package data (config schema, streams, paper tables), and every ``par`` module
imports from an installation outside the checkout."""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECK = """
import importlib, pkgutil, sys
from pathlib import Path
import par
root = Path(par.__path__[0]).resolve()
assert root.is_relative_to(Path(sys.prefix).resolve()), root   # the installed copy, not a checkout
names = sorted(m.name for m in pkgutil.walk_packages(par.__path__, "par."))
for name in names:
    importlib.import_module(name)
from par.infra.config import schema_defaults
from par.learners.discovery import discover
from par.streams.spec import shipped_streams
schema = discover(entry_points=False).config_schema()
assert "memory" in schema["$defs"] and schema_defaults("training")["epochs"] == 100
assert "cifar10-5" in shipped_streams()
print("IMPORTED", len(names))
"""


def test_the_wheel_installs_and_every_module_imports_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # a clean copy: no build/ or egg-info of earlier builds
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "par", source / "par", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(source),
                            "-w", str(wheels), "-q"], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("par_pipeline-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies (torch, snakemake, ...) from this interpreter's site-packages, after the venv's own
    Path(purelib, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(python), "-c", CHECK], cwd=elsewhere, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    n_modules = sum(1 for p in (REPO / "par").rglob("*.py") if p.name != "__init__.py") + \
        sum(1 for p in (REPO / "par").rglob("__init__.py") if p.parent != REPO / "par")
    assert f"IMPORTED {n_modules}" in result.stdout
