"""Which methods exist: the built-in ones, installed plugins and the user's own files.

A method is one module.  It registers its :class:`~par.learners.methods.Method`
(the chain rule) and its :class:`~par.learners.strategies.Strategy` (the hooks)
and declares its config section on the strategy class, as data::

    from par.learners.methods import Finetune, register_method
    from par.learners.options import ConfigSection, Option
    from par.learners.strategies import Finetune as FinetuneStrategy, register_strategy

    SECTION = ConfigSection("mine", "my method (where its defaults come from)", {
        "c": Option(0.1, "number", "weight of my penalty (my paper, Sec. 3)", minimum=0),
    })

    @register_method("mine")
    class Mine(Finetune):            # chains like finetune; learns each task with strategy "mine"
        "One model, my penalty."

    @register_strategy("mine")
    class MineStrategy(FinetuneStrategy):
        config = SECTION
        config_keys = {"c": "c"}    # config key -> constructor argument

        def __init__(self, c: float = SECTION.default("c")):
            self.c = c

The module must import no torch at its top (the workflow imports it while it is
parsed; torch goes inside the hooks).  :func:`discover` finds methods in three
places, in this order:

1. the built-in modules of :data:`BUILTIN_MODULES` (this list is the only place
   a built-in method is named);
2. installed packages, through the entry-point group :data:`ENTRY_POINT_GROUP`
   (``[project.entry-points."par.methods"] mine = "mypackage.mine"``: each
   value is a module to import);
3. the config key ``method_modules``: paths of Python files (relative to the
   working directory), imported by path, for quick work without a package.

The config schema's method list, the top-level method sections and each run's
overrides are generated from what was found (:meth:`Catalog.config_schema`).
A plugin that cannot be used stops the workflow while it is parsed with
:class:`PluginError`, naming the plugin and the problem: an import error (with
its traceback), a method, strategy or section name registered twice, a
strategy with options (``config_keys``) but no section declaration.

This module imports no torch, and no job's code imports it: adding a method
to :data:`BUILTIN_MODULES` changes no other job's code hash
(:meth:`Catalog.code_sources`).
"""
from __future__ import annotations

import importlib.util
import json
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Iterable

from par.infra.config import PIPELINE_SECTIONS, load_schema
from par.infra.io import atomic_path
from par.infra.plugins import import_source
from par.infra.provenance import module_path
from par.learners.methods import METHODS, Method
from par.learners.options import ConfigSection
from par.learners.strategies import STRATEGIES, Strategy

# The modules of the built-in methods and strategies (imported by name, in this order).
BUILTIN_MODULES = (
    "par.learners.methods",       # par, finetune, independent, ewc, lwf, mas, mas-alpha, er, agem, hat
    "par.learners.strategies",    # PAR's allocate-search/-reuse and regularize-head, finetune, independent
    "par.learners.distillation",  # PAR's regularize, lwf
    "par.learners.penalties",     # ewc, mas, mas-alpha
    "par.learners.memory",        # er, agem
    "par.learners.hat",           # hat
    "par.learners.growing",       # pn
    "par.learners.ltg",           # ltg
    "par.learners.mntdp",         # mntdp-s, mntdp-d
    "par.learners.si",            # si: the worked example of docs/how-to/add-a-method.md
)
ENTRY_POINT_GROUP = "par.methods"
# Top-level config keys a method section may not take.
RESERVED = frozenset(load_schema()["properties"])


class PluginError(ValueError):
    """A method plugin that cannot be used; the message names the plugin and the problem."""


@dataclass(frozen=True)
class Catalog:
    """What :func:`discover` found.

    ``methods``/``strategies``: name → class; ``sections``: section name →
    :class:`ConfigSection`; ``sources``: module name → how a job imports it
    again (the dotted name of an importable module, or the path of a file given
    under ``method_modules``, as the config wrote it).
    """

    methods: dict[str, type[Method]]
    strategies: dict[str, type[Strategy]]
    sections: dict[str, ConfigSection]
    sources: dict[str, str] = field(default_factory=dict)

    def method(self, name: str) -> Method:
        """An instance of the method ``name``; KeyError lists the choices."""
        if name not in self.methods:
            raise KeyError(f"unknown method {name!r}; registered: {sorted(self.methods)}")
        return self.methods[name]()

    def strategy(self, name: str) -> type[Strategy]:
        """The strategy class ``name``; KeyError lists the choices."""
        if name not in self.strategies:
            raise KeyError(f"unknown strategy {name!r}; registered: {sorted(self.strategies)}")
        return self.strategies[name]

    @property
    def section_names(self) -> tuple[str, ...]:
        """Every config section a run may override: the pipeline's, then the methods' (sorted)."""
        return (*PIPELINE_SECTIONS, *sorted(self.sections))

    def job_modules(self, strategy: str) -> list[str]:
        """What a learn job of ``strategy`` imports to register it: the source
        (see ``sources``) of the strategy's module."""
        return [self.sources[self.strategy(strategy).__module__]]

    def code_sources(self, method: str, strategy: str) -> list[Path]:
        """Files whose bytes (and static ``par`` imports) a learn job of
        ``method`` learning with ``strategy`` adds to its script's code hash:
        the modules defining the method's and the strategy's classes (base
        classes' modules follow from their imports)."""
        files = []
        for cls in (self.methods[method], self.strategy(strategy)):
            source = self.sources[cls.__module__]
            path = Path(source) if source.endswith(".py") else _module_file(source)
            if path not in files:
                files.append(path)
        return files

    def config_schema(self) -> dict:
        """The whole config schema (:func:`par.infra.config.load_schema` with
        this catalog's method list and sections)."""
        return load_schema({name: s.json_schema() for name, s in self.sections.items()},
                           {name: _summary(cls) for name, cls in self.methods.items()})

    def write_config_schema(self, path: str | Path) -> Path:
        """Write :meth:`config_schema` to ``path`` as JSON (atomically, and only
        when its content changed), for ``snakemake.utils.validate``, which reads
        a schema from a file.  Returns ``path``."""
        path = Path(path)
        text = json.dumps(self.config_schema(), indent=1) + "\n"
        try:
            if path.read_text() == text:
                return path
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        return path


def _summary(cls: type) -> str:
    """First line of a class's docstring (the method list of the schema)."""
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else cls.__name__


def _module_file(name: str) -> Path:
    path = module_path(name)
    if path is not None:
        return path
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise PluginError(f"method module {name!r} has no source file")
    return Path(spec.origin).resolve()


def _load(label: str, source: str) -> str:
    """Import ``source``; :class:`PluginError` naming ``label`` with the traceback on failure."""
    try:
        return import_source(source).__name__
    except Exception as err:  # a plugin's own bug: report it with its traceback
        detail = "".join(traceback.format_exception(err))
        raise PluginError(f"method plugin {label}: could not be imported: {err}\n\n{detail}") from err


def discover(method_modules: Iterable[str] = (), *, entry_points: bool = True) -> Catalog:
    """Import the built-in method modules, the installed plugins (entry-point
    group :data:`ENTRY_POINT_GROUP`) and the files ``method_modules`` (paths,
    relative to the working directory), and return what they registered.

    Raises :class:`PluginError` naming the plugin for an import error (with the
    traceback), a method, strategy or section name registered twice, a strategy
    whose ``config_keys`` have no section declaration (``config``) or name keys
    the section does not declare, and a section named like a pipeline config key.
    """
    if isinstance(method_modules, (str, bytes)) or not isinstance(method_modules, Iterable):
        raise PluginError(f"method_modules: expected a list of .py paths, not {method_modules!r}")
    labels: dict[str, str] = {}   # module name -> plugin label
    sources: dict[str, str] = {}  # module name -> source
    for name in BUILTIN_MODULES:
        sources[_load(name, name)] = name
        labels[name] = f"built-in module {name}"
    if entry_points:
        for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            label = f"{point.name!r} (entry point {point.value!r} of group {ENTRY_POINT_GROUP})"
            module = _load(label, point.value)
            sources[module], labels[module] = point.value, label
    for path in method_modules:
        if not isinstance(path, str) or not path.endswith(".py"):
            raise PluginError(f"method_modules: {path!r} is not the path of a .py file")
        label = f"{path} (config key method_modules)"
        module = _load(label, path)
        sources[module], labels[module] = path, label
    methods = {n: c for n, c in METHODS.items() if c.__module__ in sources}
    strategies = {n: c for n, c in STRATEGIES.items() if c.__module__ in sources}
    sections: dict[str, ConfigSection] = {}
    owners: dict[str, str] = {}
    for name, cls in strategies.items():
        where = f"strategy {name!r} ({cls.__module__}.{cls.__qualname__}, {labels[cls.__module__]})"
        section = cls.config
        if section is None:
            if cls.config_keys:
                raise PluginError(f"{where} reads config keys {sorted(cls.config_keys)} but declares no config "
                                  "section: set the class attribute config = ConfigSection(...) "
                                  "(par.learners.options)")
            continue
        if not isinstance(section, ConfigSection):
            raise PluginError(f"{where}: config must be a par.learners.options.ConfigSection, not {section!r}")
        unknown = sorted((set(cls.config_keys) | set(cls.keys_without_predecessor)) - set(section.options))
        if unknown:
            raise PluginError(f"{where} reads keys {unknown} that its section {section.name!r} does not declare")
        if section.name in RESERVED:
            raise PluginError(f"{where}: section name {section.name!r} is a pipeline config key; choose another")
        if section.name in sections and sections[section.name] != section:
            raise PluginError(f"{where} declares config section {section.name!r}, already declared differently "
                              f"by {owners[section.name]}")
        sections.setdefault(section.name, section)
        owners.setdefault(section.name, where)
    return Catalog(methods, strategies, sections, sources)
