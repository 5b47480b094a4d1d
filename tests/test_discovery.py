"""The method catalog: discovery of built-in methods, entry-point plugins and
method_modules files, the schema generated from their declarations, bad plugins
stopped with a message naming them, and code hashes at method granularity."""
from __future__ import annotations

import inspect
import shutil
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from snakemake.utils import validate

from par.infra.config import PIPELINE_SECTIONS, load_schema, schema_defaults
from par.infra.provenance import code_files
from par.learners import discovery
from par.learners.discovery import PluginError, discover
from par.learners.methods import METHODS
from par.learners.strategies import STRATEGIES

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
PLUGIN = Path(__file__).resolve().parent / "plugins" / "l2_anchor.py"
BUILTIN_METHODS = {"par", "finetune", "independent", "ewc", "lwf", "mas", "mas-alpha", "er", "agem", "hat", "pn",
                   "ltg", "mntdp-s", "mntdp-d", "si"}
METHOD_SECTIONS = {"lwf", "ewc", "lwf_baseline", "mas", "mas_alpha", "memory", "hat", "ltg", "mntdp", "si"}


@pytest.fixture(autouse=True)
def registries():
    """Plugins registered by a test are forgotten after it (the built-ins stay)."""
    discover(entry_points=False)
    methods, strategies = dict(METHODS), dict(STRATEGIES)
    yield
    for registry, saved in ((METHODS, methods), (STRATEGIES, strategies)):
        registry.clear()
        registry.update(saved)


def plugin(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / "plugins" / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_builtin_methods_and_their_sections():
    found = discover(entry_points=False)
    assert set(found.methods) == BUILTIN_METHODS
    assert set(found.sections) == METHOD_SECTIONS
    assert found.section_names == (*PIPELINE_SECTIONS, *sorted(METHOD_SECTIONS))
    # ER and A-GEM share one section; every strategy's keys are declared by its section
    assert found.strategy("er").config is found.strategy("agem").config is found.sections["memory"]
    assert found.strategy("regularize").config.name == "lwf" and found.strategy("lwf").config.name == "lwf_baseline"
    assert found.job_modules("er") == ["par.learners.memory"] and found.job_modules("ltg") == ["par.learners.ltg"]
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        found.method("nope")


@pytest.mark.parametrize("strategy", ["regularize", "lwf", "ewc", "mas", "mas-alpha", "er", "agem", "hat", "ltg",
                                      "mntdp-s", "mntdp-d"])
def test_constructor_defaults_are_the_declared_defaults(strategy):
    """One place per default: each constructor argument's default is its key's declared default."""
    cls = discover(entry_points=False).strategy(strategy)
    signature = inspect.signature(cls.__init__).parameters
    assert {arg: signature[arg].default for arg in cls.config_keys.values()} == \
        {arg: cls.config.default(key) for key, arg in cls.config_keys.items()}


def test_the_generated_schema_validates_and_fills_nested_defaults(tmp_path):
    found = discover(entry_points=False)
    schema = found.config_schema()
    run = schema["properties"]["runs"]["additionalProperties"]["properties"]
    assert run["method"]["enum"] == sorted(BUILTIN_METHODS)
    assert "er: One model with an episodic memory" in run["method"]["description"]
    assert set(run) == {"method", *PIPELINE_SECTIONS, *METHOD_SECTIONS}
    assert schema["$defs"]["memory"]["properties"]["samples_per_class"] == {
        "type": "integer", "minimum": 1, "default": 10,
        "description": found.sections["memory"].options["samples_per_class"].description}
    # the static file holds only the pipeline's sections
    assert not METHOD_SECTIONS & set(load_schema()["$defs"]) and "enum" not in \
        load_schema()["properties"]["runs"]["additionalProperties"]["properties"]["method"]
    path = found.write_config_schema(tmp_path / "schema.json")
    mtime = path.stat().st_mtime_ns
    assert found.write_config_schema(path).stat().st_mtime_ns == mtime  # unchanged: not rewritten
    config = {"runs": {"a": {"method": "mas", "mas": {"lambda": 5.0}}, "b": {"method": "er"}}}
    validate(config, str(path))
    assert config["memory"] == {"samples_per_class": 10} and config["hat"]["s_max"] == 400.0
    assert config["runs"]["a"]["mas"] == {"lambda": 5.0, "importance": "authors"}
    assert config["training"]["epochs"] == 100
    for bad, message in (({"runs": {"a": {"method": "nope"}}}, "'nope' is not one of"),
                         ({"runs": {"a": {"method": "er"}}, "memory": {"samples_per_class": 0}}, "minimum of 1"),
                         ({"runs": {"a": {"method": "er", "memory": {"size": 3}}}}, "'size' was unexpected")):
        with pytest.raises(Exception, match=message):
            validate(bad, str(path))


def test_schema_defaults_names_a_method_section_as_not_a_pipeline_section():
    assert schema_defaults("planning")["alpha"] == 0.5
    with pytest.raises(KeyError, match="'memory' is not a pipeline section"):
        schema_defaults("memory")


def test_a_method_module_file_registers_its_method(tmp_path):
    path = shutil.copy(PLUGIN, tmp_path / "l2_anchor.py")
    found = discover([str(path)], entry_points=False)
    assert set(found.methods) == BUILTIN_METHODS | {"l2-anchor"}
    assert found.sections["l2_anchor"].defaults() == {"lambda": 0.01}
    assert found.job_modules("l2-anchor") == [str(path)]
    assert found.code_sources("l2-anchor", "l2-anchor") == [Path(path)]
    assert found.method("l2-anchor").assignments(2)[1]["strategy"] == "l2-anchor"
    assert "l2_anchor" in found.config_schema()["properties"]
    # discovered again in the same process (the workflow parses once per call): the same module
    assert discover([str(path)], entry_points=False).methods["l2-anchor"] is found.methods["l2-anchor"]
    # without the file, the method is not offered
    assert "l2-anchor" not in discover(entry_points=False).methods


def test_an_entry_point_plugin_registers_its_method(tmp_path, monkeypatch):
    package = tmp_path / "site" / "mypackage"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copy(PLUGIN, package / "anchor.py")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    points = [metadata.EntryPoint("l2", "mypackage.anchor", discovery.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(discovery.metadata, "entry_points",
                        lambda group: [p for p in points if p.group == group])
    found = discover()
    assert "l2-anchor" in found.methods and found.job_modules("l2-anchor") == ["mypackage.anchor"]
    assert found.code_sources("l2-anchor", "l2-anchor") == [(package / "anchor.py").resolve()]


@pytest.mark.parametrize("body, message", [
    ("import par.learners.no_such_module\n", r"could not be imported: No module named 'par.learners.no_such_module'"),
    ("""\
     from par.learners.methods import Finetune, register_method

     @register_method("finetune")
     class Again(Finetune):
         pass
     """, r"method 'finetune' of .*Again is already registered by par.learners.methods.Finetune"),
    ("""\
     from par.learners.strategies import Strategy, register_strategy

     @register_strategy("keyed")
     class Keyed(Strategy):
         config_keys = {"c": "c"}
     """, r"strategy 'keyed' .* reads config keys \['c'\] but declares no config section"),
    ("""\
     from par.learners.options import ConfigSection, Option
     from par.learners.strategies import Strategy, register_strategy

     @register_strategy("other-memory")
     class OtherMemory(Strategy):
         config = ConfigSection("memory", "another memory", {"size": Option(3, "integer", "slots")})
         config_keys = {"size": "size"}
     """, r"declares config section 'memory', already declared differently by strategy '(er|agem)'"),
    ("""\
     from par.learners.options import ConfigSection, Option
     from par.learners.strategies import Strategy, register_strategy

     @register_strategy("trainer")
     class Trainer(Strategy):
         config = ConfigSection("training", "clash", {"lr": Option(0.1, "number", "lr")})
         config_keys = {"lr": "lr"}
     """, r"section name 'training' is a pipeline config key"),
    ("""\
     from par.learners.options import ConfigSection, Option
     from par.learners.strategies import Strategy, register_strategy

     @register_strategy("undeclared")
     class Undeclared(Strategy):
         config = ConfigSection("undeclared", "x", {"a": Option(1, "integer", "a")})
         config_keys = {"a": "a", "b": "b"}
     """, r"reads keys \['b'\] that its section 'undeclared' does not declare"),
])
def test_a_bad_plugin_stops_discovery_naming_it(tmp_path, body, message):
    path = plugin(tmp_path, "bad_plugin", body)
    with pytest.raises(PluginError, match=message) as error:
        discover([path], entry_points=False)
    assert "bad_plugin.py" in str(error.value)


def test_an_import_error_carries_the_plugins_traceback(tmp_path):
    path = plugin(tmp_path, "broken", "def f():\n    return 1 / 0\n\nVALUE = f()\n")
    with pytest.raises(PluginError) as error:
        discover([path], entry_points=False)
    text = str(error.value)
    assert f"{path} (config key method_modules): could not be imported: division by zero" in text
    assert "Traceback" in text and "return 1 / 0" in text and "broken.py\", line 2" in text
    with pytest.raises(PluginError, match="not the path of a .py file"):
        discover(["my_method"], entry_points=False)
    with pytest.raises(PluginError, match="expected a list of .py paths"):
        discover("my_method.py", entry_points=False)


# ---- code hashes at method granularity ---------------------------------------------------

def relative(files):
    return {str(Path(f).relative_to(REPO)) for f in files if Path(f).is_relative_to(REPO)}


def test_the_learn_script_imports_no_method_module_and_no_catalog():
    shared = relative(code_files(SCRIPTS / "learn_task.py"))
    assert {"par/training.py", "par/learners/job.py", "par/learners/strategies.py"} <= shared
    assert not {"par/learners/memory.py", "par/learners/hat.py", "par/learners/growing.py",
                "par/learners/discovery.py", "par/learners/methods.py"} & shared
    # nothing a job runs lists the methods: adding one changes no other job's hash
    for script in SCRIPTS.glob("*.py"):
        assert "par/learners/discovery.py" not in relative(code_files(script)), script.name
    for script in ("plan.py", "search_cell.py", "switch_ablation.py", "metrics.py", "tables.py"):
        assert not {f for f in relative(code_files(SCRIPTS / script)) if f.startswith("par/learners/")}, script


def test_each_learn_job_adds_only_its_own_methods_modules():
    found = discover(entry_points=False)
    er = relative(code_files(SCRIPTS / "learn_task.py", extra=found.code_sources("er", "er")))
    finetune = relative(code_files(SCRIPTS / "learn_task.py", extra=found.code_sources("finetune", "finetune")))
    assert "par/learners/memory.py" in er and "par/learners/memory.py" not in finetune
    assert er - finetune == {"par/learners/memory.py"}
    ltg = relative(code_files(SCRIPTS / "learn_task.py", extra=found.code_sources("ltg", "ltg")))
    assert "par/learners/growing.py" in ltg and not {"par/learners/memory.py", "par/learners/hat.py"} & ltg
