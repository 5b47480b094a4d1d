"""Run settings: global config sections merged with a run's own overrides.

The workflow validates the config against ``workflow/schemas`` (types, ranges,
unknown keys); this module adds what a JSON schema cannot say and builds the
settings each run's jobs receive.
"""
from __future__ import annotations

import copy

SECTIONS = ("training", "planning", "search", "expert", "backbone", "lwf", "ewc", "lwf_baseline", "mas", "mas_alpha")


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
