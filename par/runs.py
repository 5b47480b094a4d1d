"""The run policy: which runs a validated config makes, and what each job's params carry.

The workflow (``workflow/rules/common.smk``) only wires these functions to rules;
everything here is plain Python on dicts, torch-free, and tested without Snakemake
(tests/test_runs.py).

Runs
    :func:`make_runs`: the configured runs (``runs:``, each section of the config
    updated with the run's own overrides), the runs the paper targets generate
    (Table 5, the α/β sweeps, the switch ablation; :mod:`par.paper.ablations`),
    aliases for generated runs equal to an existing one, and the relatedness
    variant of each run (own distances when it overrides a distance setting).

Job params: the invalidation policy
    Snakemake re-runs a job when its params change, so a job's params hold
    exactly the settings its computation reads, and nothing else:

    - :func:`training_params`: the run's ``training`` section, without
      ``patience`` where the strategy never stops early, and without the keys of
      :data:`par.infra.config.NEUTRAL_VALUES` that hold a neutral value;
    - :func:`strategy_params`: the body spec where the task builds a fresh body
      (:func:`par.nets.specs.body_spec`; the learn job adds an expert's genotype,
      :func:`par.nets.specs.with_genotype`), and the keys of the strategy's own
      config section it reads (without a predecessor, only
      ``keys_without_predecessor``);
    - :func:`search_params`: the MDL search's.

    Snakemake compares a job's params by their ``repr``, in which a dict lists
    its keys in insertion order: the order of the user's YAML, then the
    schema's defaults.  Every dict param therefore goes through :func:`as_param`,
    whose :class:`Param` prints its keys sorted, so that moving a key in the
    config, or writing out a default, re-runs nothing.

``method`` and ``strategy`` arguments are the registered classes (or instances)
from :class:`par.learners.discovery.Catalog`; this module names no method.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from par.infra.config import check_run, relatedness_variant, run_settings, without_neutral_values
from par.nets.specs import body_spec
from par.paper.ablations import generated_runs, resolve_aliases


class Param(dict):
    """A job's dict param: a plain ``dict`` (same items, same order, for the
    job's script) whose ``repr``, what Snakemake records to notice changed
    params, lists the keys sorted at every depth (:func:`canonical_repr`)."""

    def __repr__(self) -> str:
        return canonical_repr(self)


def canonical_repr(value) -> str:
    """``repr(value)`` with every dict's keys sorted (by their ``repr``), at any
    depth of dicts, lists and tuples; other values as ``repr`` prints them.  Two
    dicts with the same items give the same string whatever their key order; a
    dict whose keys are already sorted gives ``repr(value)`` itself."""
    if isinstance(value, dict):
        items = sorted((canonical_repr(k), canonical_repr(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(canonical_repr(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(canonical_repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def as_param(value):
    """``value`` as a job param: a dict becomes a :class:`Param` (a shallow
    copy), anything else is returned as it is."""
    return Param(value) if isinstance(value, dict) else value


@dataclass(frozen=True)
class Runs:
    """Every run of a config.

    ``settings``: run name → its settings (``method`` and one dict per section),
    configured runs first, then the generated ones that are not aliases;
    ``configured``: names of the runs under ``runs:`` (the tables' rows);
    ``aliases``: generated run → the run with the same settings that stands for it;
    ``relatedness``: run → its relatedness variant name, None for the global
    settings' distances; ``variants``: variant name → its relatedness settings.
    """

    settings: dict[str, dict]
    configured: list[str]
    aliases: dict[str, str]
    relatedness: dict[str, str | None]
    variants: dict[str, dict]

    def actual(self, run: str) -> str:
        """The run that stands for ``run`` (itself unless an alias)."""
        return self.aliases.get(run, run)


def make_runs(config: dict, raw_runs: dict[str, dict], sections: Iterable[str]) -> Runs:
    """The runs of ``config`` (validated, defaults filled).

    ``raw_runs``: the ``runs`` entries as the user wrote them (before the
    schema's defaults were filled in: only the keys written override);
    ``sections``: the sections a run may override
    (:attr:`par.learners.discovery.Catalog.section_names`).

    Raises :class:`par.infra.config.ConfigError` naming the run and the key for
    settings the schema cannot reject (alpha > beta; a generated run's name
    taken by a configured run with other settings).
    """
    sections = tuple(sections)
    configured = {}
    for name, raw in raw_runs.items():
        configured[name] = run_settings(config, raw, sections)
        check_run(name, configured[name])
    generated = {name: run_settings(config, raw, sections)
                 for name, raw in generated_runs(config["paper_targets"], config).items()}
    for name, settings in generated.items():
        check_run(name, settings)
    new, aliases = resolve_aliases(configured, generated)
    settings = {**configured, **new}
    relatedness = {r: relatedness_variant(s["relatedness"], config["relatedness"]) for r, s in settings.items()}
    variants = {v: settings[r]["relatedness"] for r, v in relatedness.items() if v is not None}
    return Runs(settings, list(configured), aliases, relatedness, variants)


def training_params(settings: dict, strategy) -> dict:
    """The training settings a learn job of ``strategy`` reads: ``patience``
    only where the strategy stops early (``strategy.early_stopping``), and the
    keys of :data:`par.infra.config.NEUTRAL_VALUES` only at a non-neutral value.
    A new dict."""
    params = without_neutral_values("training", settings["training"])
    if not strategy.early_stopping:
        params.pop("patience")
    return params


def strategy_options(settings: dict, strategy, assignment: dict) -> dict:
    """The keys of the strategy's config section (``strategy.config``) that the
    task reads: ``config_keys``, or ``keys_without_predecessor`` when the task
    has no predecessor.  KeyError when the strategy declares no section."""
    keys = strategy.config_keys if assignment["predecessor"] is not None else strategy.keys_without_predecessor
    section = settings[strategy.config.name]
    return {key: section[key] for key in keys}


def strategy_params(settings: dict, method, strategy, assignment: dict) -> dict:
    """The learn job's ``strategy`` param: ``body``
    (:func:`par.nets.specs.body_spec` of ``method.body_kind`` where the
    task builds a fresh body: ``strategy.fresh_body`` or no predecessor; else
    None) and, for a strategy with a config section, ``options``
    (:func:`strategy_options`)."""
    fresh = strategy.fresh_body or assignment["predecessor"] is None
    params = {"body": body_spec(settings, method.body_kind) if fresh else None}
    if strategy.config is not None:
        params["options"] = strategy_options(settings, strategy, assignment)
    return params


def search_params(settings: dict) -> dict:
    """The MDL search's settings: the ``search`` section, the expert's
    ``factorized_reduce_bn`` (the supernet builds its cells alike) and the
    training section's augmentation and evaluation batch, which the supernet's
    training through :func:`par.training.fit` shares."""
    training = settings["training"]
    shared = {key: training[key] for key in ("crop_padding", "brightness", "eval_batch_size")}
    return {**settings["search"], "factorized_reduce_bn": settings["expert"]["factorized_reduce_bn"], **shared}
