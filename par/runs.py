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
      (:func:`body_spec`; its genotype comes from the assignment's
      ``genotype_source`` and the cell file), and the keys of the strategy's own
      config section it reads (without a predecessor, only
      ``keys_without_predecessor``);
    - :func:`search_params`, :func:`plan_params`: the MDL search's and the plan's.

``method`` and ``strategy`` arguments are the registered classes (or instances)
from :class:`par.learners.discovery.Catalog`; this module names no method.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from par.infra.config import check_run, relatedness_variant, run_settings, without_neutral_values
from par.paper.ablations import generated_runs, resolve_aliases


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


def body_spec(settings: dict, method) -> dict:
    """The spec of a fresh body of ``method`` (``method.body_kind``): an expert
    from the ``expert`` section (its genotype from the assignment's
    ``genotype_source``: the cell file or DARTS-V2, added by the learn job),
    else a light-ResNet18-style body from ``backbone``."""
    section = "expert" if method.body_kind == "expert" else "backbone"
    return {"kind": method.body_kind, **settings[section]}


def strategy_options(settings: dict, strategy, assignment: dict) -> dict:
    """The keys of the strategy's config section (``strategy.config``) that the
    task reads: ``config_keys``, or ``keys_without_predecessor`` when the task
    has no predecessor.  KeyError when the strategy declares no section."""
    keys = strategy.config_keys if assignment["predecessor"] is not None else strategy.keys_without_predecessor
    section = settings[strategy.config.name]
    return {key: section[key] for key in keys}


def strategy_params(settings: dict, method, strategy, assignment: dict) -> dict:
    """The learn job's ``strategy`` param: ``body`` (:func:`body_spec` where the
    task builds a fresh body: ``strategy.fresh_body`` or no predecessor; else
    None) and, for a strategy with a config section, ``options``
    (:func:`strategy_options`)."""
    fresh = strategy.fresh_body or assignment["predecessor"] is None
    params = {"body": body_spec(settings, method) if fresh else None}
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


def plan_params(settings: dict) -> dict:
    """The plan's settings: the ``planning`` section and relatedness's
    ``zero_is_far`` (applied by the plan, not to the distances)."""
    return {"planning": settings["planning"], "zero_is_far": settings["relatedness"]["zero_is_far"]}
