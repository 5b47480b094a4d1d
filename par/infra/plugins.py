"""Importing a module named by the config: a dotted module name or a ``.py`` file path.

The method catalog (:mod:`par.learners.discovery`, while the workflow is parsed)
and a learn job (which imports only its own method's module) both import a
method module this way, so a file listed under the config key
``method_modules`` gets the same module name in both processes.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def file_module_name(path: str | Path) -> str:
    """The module name a ``.py`` file is imported under: its stem and a digest of
    its resolved path (two files of the same name stay two modules)."""
    path = Path(path).resolve()
    return f"par_method_file_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"


def import_source(source: str) -> ModuleType:
    """Import ``source``: a dotted module name (``importlib.import_module``), or
    the path of a ``.py`` file (absolute or relative to the working directory),
    imported once per process under :func:`file_module_name`.

    Raises FileNotFoundError for a missing file; the module's own errors
    (SyntaxError, ImportError, …) propagate, and a file that failed leaves
    nothing in ``sys.modules``.
    """
    if not source.endswith(".py"):
        return importlib.import_module(source)
    path = Path(source).resolve()
    name = file_module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
