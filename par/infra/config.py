"""Run settings: global config sections merged with a run's own overrides.

The workflow validates the config against ``par/data/config.schema.yaml`` (types, ranges,
unknown keys); this module adds what a JSON schema cannot say and builds the
settings each run's jobs receive.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path

SECTIONS = ("relatedness", "training", "planning", "search", "expert", "backbone", "lwf", "ewc",
            "lwf_baseline", "mas", "mas_alpha", "memory", "hat", "ltg", "mntdp")


class ConfigError(ValueError):
    """A config value that passes the schema but makes no sense; the message names the key."""


def run_settings(config: dict, run_overrides: dict) -> dict:
    """Settings of one run: each section of ``config`` (validated, defaults
    filled) updated with the keys the user wrote in ``run_overrides`` (the raw
    ``runs.<name>`` entry, before defaults were filled in)."""
    settings = {"method": run_overrides["method"]}
    for section in SECTIONS:
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


def load_schema() -> dict:
    """The whole config schema as a dict (JSON schema, draft 2020-12): what the
    workflow validates a config against and what the config reference documents.
    A new dict on every call."""
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


@functools.lru_cache(maxsize=None)
def schema_defaults(section: str) -> dict:
    """The default of every key of config section ``section`` as
    ``par/data/config.schema.yaml`` gives it: the one place defaults live
    (for code outside the workflow, e.g. tests and benchmark scripts).
    Raises KeyError for a section the schema does not define."""
    properties = load_schema()["$defs"][section]["properties"]
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}
