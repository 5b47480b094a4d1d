"""Run settings: global config sections merged with a run's own overrides.

The workflow validates the config against :func:`load_schema`: the pipeline's
sections from ``par/data/config.schema.yaml`` plus the methods' sections, which
each method declares on its strategy class (:mod:`par.learners.options`) and
:meth:`par.learners.discovery.Catalog.config_schema` passes in.  This module adds
what a JSON schema cannot say and builds the settings each run's jobs receive.
It knows no method by name: adding a method changes no byte of it (it is part
of the code hash of the plan, the cell search and the learn jobs).
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Iterable, Mapping

# The pipeline's sections a run may override (the methods' sections come from their declarations).
PIPELINE_SECTIONS = ("relatedness", "training", "planning", "search", "expert", "backbone")


class ConfigError(ValueError):
    """A config value that passes the schema but makes no sense; the message names the key."""


def run_settings(config: dict, run_overrides: dict, sections: Iterable[str]) -> dict:
    """Settings of one run: each of ``sections`` of ``config`` (validated,
    defaults filled) updated with the keys the user wrote in ``run_overrides``
    (the raw ``runs.<name>`` entry, before defaults were filled in).
    ``sections``: :data:`PIPELINE_SECTIONS` and the methods' section names
    (:attr:`par.learners.discovery.Catalog.section_names`).  Raises KeyError for
    a section ``config`` lacks."""
    settings = {"method": run_overrides["method"]}
    for section in sections:
        merged = copy.deepcopy(config[section])
        merged.update(run_overrides.get(section, {}))
        settings[section] = merged
    return settings


def check_run(name: str, settings: dict) -> None:
    """Raise :class:`ConfigError` for combinations the schema cannot express."""
    planning = settings["planning"]
    if planning["alpha"] > planning["beta"]:
        raise ConfigError(
            f"runs.{name}: planning.alpha={planning['alpha']} is larger than planning.beta={planning['beta']}; "
            "alpha <= beta is required (s <= alpha joins a group, s > beta searches a cell)"
        )


# Keys added to a section after results existed, with the values that leave every
# job's computation as it was before the key existed (the schema default among
# them).  A job's params omit a key that holds one of these values, so the
# results made before the key was added stay valid; any other value re-runs.
NEUTRAL_VALUES: dict[str, dict[str, tuple]] = {
    "training": {"amp": ("off", False), "compile": (False,)},
}


def without_neutral_values(section: str, settings: dict) -> dict:
    """``settings`` (one config section) without the keys of
    :data:`NEUTRAL_VALUES` ``[section]`` that hold a neutral value.  A new dict."""
    neutral = NEUTRAL_VALUES.get(section, {})
    return {k: v for k, v in settings.items()
            if not (k in neutral and any(v is n or (type(v) is type(n) and v == n) for n in neutral[k]))}


# The relatedness settings that change distances.parquet; zero_is_far is applied by the plan.
DISTANCE_KEYS = ("distance_split", "clamp_per_class", "epsilon")


def relatedness_variant(run_relatedness: dict, global_relatedness: dict) -> str | None:
    """Name of a run's relatedness variant, or None when its distances are those
    of the global ``relatedness`` settings (the default files).

    The name lists the :data:`DISTANCE_KEYS` that differ, sorted, e.g. ``clamp_per_class-false`` or
    ``clamp_per_class-false+distance_split-train``; it names the folder
    ``relatedness/<bench>/seed<s>/variants/<name>/``.
    """
    differ = {k: v for k, v in run_relatedness.items() if k in DISTANCE_KEYS and global_relatedness.get(k) != v}
    if not differ:
        return None
    return "+".join(f"{k}-{v:g}" if isinstance(v, float) else f"{k}-{str(v).lower()}" for k, v in sorted(differ.items()))


SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "config.schema.yaml"


def load_schema(method_sections: Mapping[str, dict] | None = None,
                methods: Mapping[str, str] | None = None) -> dict:
    """The config schema as a dict (JSON schema, draft 2020-12): what the
    workflow validates a config against and what the config reference documents.

    The static part is ``par/data/config.schema.yaml`` (the pipeline's
    sections).  Generated from the arguments, which
    :meth:`par.learners.discovery.Catalog.config_schema` passes (that is the
    whole schema the workflow validates against):

    - ``method_sections``: section name → its JSON schema
      (:meth:`par.learners.options.ConfigSection.json_schema`); each becomes a
      ``$defs`` entry, a top-level key (default ``{}``, so defaults fill in)
      and an override each run accepts;
    - ``methods``: method name → one-line description, the ``enum`` of
      ``runs.<name>.method`` (without it: any string).

    Raises ValueError when a method section is named like a key the static
    part defines.  A new dict on every call.
    """
    import yaml

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    run = schema["properties"]["runs"]["additionalProperties"]
    for name, section in (method_sections or {}).items():
        if name in schema["properties"] or name in schema["$defs"]:
            raise ValueError(f"method section {name!r} is named like a pipeline config key")
        schema["$defs"][name] = copy.deepcopy(section)
        schema["properties"][name] = {"$ref": f"#/$defs/{name}", "default": {}}
        run["properties"][name] = {"$ref": f"#/$defs/{name}"}
    if methods is not None:
        method = run["properties"]["method"]
        method["enum"] = sorted(methods)
        method["description"] = "\n".join([method["description"].strip(), "",
                                            *(f"{name}: {text}" for name, text in sorted(methods.items()))])
    return schema


@functools.lru_cache(maxsize=None)
def schema_defaults(section: str) -> dict:
    """The default of every key of the pipeline config section ``section``
    (:data:`PIPELINE_SECTIONS`) as ``par/data/config.schema.yaml`` gives it:
    the one place those defaults live (for code outside the workflow, e.g.
    tests and benchmark scripts).  A method's defaults are its declaration's
    (:meth:`par.learners.options.ConfigSection.defaults`).
    Raises KeyError for a section the static schema does not define."""
    defs = load_schema()["$defs"]
    if section not in defs:
        raise KeyError(f"config section {section!r} is not a pipeline section {sorted(defs)}; a method's "
                       "section defaults are its declaration's (Strategy.config.defaults())")
    return {key: spec["default"] for key, spec in defs[section]["properties"].items() if "default" in spec}
