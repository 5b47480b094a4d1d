"""Runs the paper's ablations need, generated from the config (Table 5, Fig. 3–4,
and the paper-vs-code switches of docs/spec.md), and the switch ablation table of their results.

Each generated run is a raw run entry, ``{"method": "par", <section>: {overrides}}``,
exactly as a user would write it under ``runs:``; :func:`par.infra.config.run_settings`
merges it with the reproduction's global sections.  Overrides are *relative to
those global sections*, so an ablation changes one thing and keeps everything else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from par.infra.config import PIPELINE_SECTIONS, ConfigError
from par.infra.formatting import format_number

if TYPE_CHECKING:  # the workflow reads the switches while parsing: no pandas then
    import pandas as pd

# Table 5 (paper Sec. 4.3): row label of paper_results.csv -> (run name, overrides).
# Columns of the paper's table: Fixed = the DARTS-V2 cell, FS = fine-grained search
# (MDL cell search), CS = coarse-grained search space (reuse of existing experts'
# cells, the beta threshold), Reg. = parameter regularization (joining a group).
#   no Reg.  -> planning.regularize: false (every task allocates an expert)
#   no CS    -> planning.reuse_cells: false (an allocating task never reuses a cell)
#   Fixed    -> planning.cell_search: darts_v2 (no search; CS is moot: all cells equal)
#   Reg only -> alpha = beta = 1: s = min(s', 1 - e^{-2s'}) < 1 always, so every task
#               after the first joins group 1 (one expert, task 1's searched cell)
TABLE5_RUNS: dict[str, tuple[str, dict]] = {
    "1 Fixed": ("t5-fixed", {"planning": {"cell_search": "darts_v2", "regularize": False}}),
    "2 FS": ("t5-fs", {"planning": {"regularize": False, "reuse_cells": False}}),
    "3 FS+CS": ("t5-fs-cs", {"planning": {"regularize": False}}),
    "4 Reg": ("t5-reg", {"planning": {"alpha": 1.0, "beta": 1.0}}),
    "5 Fixed+Reg": ("t5-fixed-reg", {"planning": {"cell_search": "darts_v2"}}),
    "6 FS+Reg": ("t5-fs-reg", {"planning": {"reuse_cells": False}}),
    "PAR FS+CS+Reg": ("par", {}),
}


@dataclass(frozen=True)
class Switch:
    """One paper-vs-code difference of docs/spec.md: ``section.key`` set to ``value``, its
    non-default value (mostly the paper text's variant; the defaults follow the
    authors' code, except ``zero_is_far``, whose quirk is off by default)."""

    section: str
    key: str
    value: object
    what: str

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def run(self) -> str:
        """Name of the generated run, e.g. ``switch-head_only_ratio-0.1``."""
        return f"switch-{self.key}-{str(self.value).lower()}"


# Every switch of SPEC, at its non-default value (docs/spec.md §1–§4).
SWITCHES: tuple[Switch, ...] = (
    Switch("relatedness", "distance_split", "train", "prototypes and distances from the train split (docs/spec.md §1)"),
    Switch("relatedness", "clamp_per_class", False, "no clamping of k_c at 0 (Eq. 4 as printed)"),
    Switch("relatedness", "zero_is_far", True, "authors' quirk: KL = 0 becomes 1"),
    Switch("planning", "relatedness_map", "per_group", "Eq. 6 applied to the group mean (paper order)"),
    Switch("planning", "group_distance", "min", "s' = min over the group instead of the mean (Eq. 5)"),
    Switch("planning", "group_distance", "max", "s' = max over the group instead of the mean (Eq. 5)"),
    Switch("planning", "head_only_ratio", 0.1, "head-only threshold of the paper text (code 0.5)"),
    Switch("planning", "tiny_task_rule", False, "no special case for tiny tasks (paper text)"),
    Switch("planning", "coarse_search", "sample", "coarse level sampled as in the paper (code: beta threshold)"),
    Switch("search", "mdl_update", "logits", "MdeNAS update on logits (code: on probabilities)"),
    Switch("expert", "factorized_reduce_bn", True, "FactorizedReduce applies its BatchNorm (DARTS)"),
)



def switch_status(switch: Switch, config: dict) -> str | None:
    """None when ``switch`` can be run in this build, else why not."""
    if switch.section not in PIPELINE_SECTIONS:
        return f"not ablatable: {switch.section} is not a section a run may override"
    if switch.key not in config.get(switch.section, {}):
        return "not in this build"
    return None


def sweep_run(parameter: str, value: float) -> str:
    """Name of the sweep run of ``parameter`` (alpha or beta) at ``value``, e.g. ``alpha-0.3``."""
    return f"{parameter}-{value:g}"


def sweep_runs(alpha_values: list[float], beta_values: list[float], *, fixed_beta: float,
               fixed_alpha: float) -> dict[str, dict]:
    """Runs of the α sweep (β fixed, paper Fig. 3) and the β sweep (α fixed, Fig. 4).

    ``fixed_beta``/``fixed_alpha``: the config keys ``paper_targets.sweep_beta`` /
    ``sweep_alpha`` (defaults in the schema).  Names: ``alpha-<value>`` and ``beta-<value>``.  Raises ConfigError (naming the
    ``paper_targets`` key) when a sweep would need α > β.
    """
    runs = {}
    for alpha in alpha_values:
        if alpha > fixed_beta:
            raise ConfigError(f"paper_targets.alpha_sweep: alpha={alpha} is larger than "
                              f"paper_targets.sweep_beta={fixed_beta}; alpha <= beta is required")
        runs[sweep_run("alpha", alpha)] = {"method": "par", "planning": {"alpha": alpha, "beta": fixed_beta}}
    for beta in beta_values:
        if fixed_alpha > beta:
            raise ConfigError(f"paper_targets.beta_sweep: beta={beta} is smaller than "
                              f"paper_targets.sweep_alpha={fixed_alpha}; alpha <= beta is required")
        runs[sweep_run("beta", beta)] = {"method": "par", "planning": {"alpha": fixed_alpha, "beta": beta}}
    return runs


def switch_runs(names: list[str], config: dict) -> dict[str, dict]:
    """Runs of the switch ablation for the switches named ``section.key`` in
    ``names`` that this build can run (see :func:`switch_status`)."""
    return {s.run: {"method": "par", s.section: {s.key: s.value}}
            for s in selected_switches(names) if switch_status(s, config) is None}


def selected_switches(names: list[str]) -> list[Switch]:
    """The switches named ``section.key`` in ``names`` (every value of each);
    ConfigError for a name that is not a switch of docs/spec.md."""
    known = {s.name for s in SWITCHES}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ConfigError(f"paper_targets.switches: {unknown} are not switches (README 'Switches', docs/spec.md); choose from {sorted(known)}")
    return [s for s in SWITCHES if s.name in names]


def table5_runs(rows: list[str] | None = None) -> dict[str, dict]:
    """Raw run entries of the Table 5 rows labelled ``rows`` (default: all; the
    row of PAR itself is the configured run ``par``).  ConfigError for an
    unknown label."""
    rows = list(TABLE5_RUNS) if rows is None else rows
    unknown = sorted(set(rows) - set(TABLE5_RUNS))
    if unknown:
        raise ConfigError(f"paper_targets.table5_rows: {unknown} are not rows of Table 5; choose from {list(TABLE5_RUNS)}")
    return {run: {"method": "par", **overrides} for row, (run, overrides) in TABLE5_RUNS.items()
            if row in rows and run != "par"}


def generated_runs(targets: dict, config: dict) -> dict[str, dict]:
    """Every run the paper targets need, from the ``paper_targets`` config section."""
    runs = table5_runs(targets["table5_rows"])
    runs.update(sweep_runs(targets["alpha_sweep"], targets["beta_sweep"], fixed_beta=targets["sweep_beta"],
                           fixed_alpha=targets["sweep_alpha"]))
    runs.update(switch_runs(targets["switches"], config))
    return runs


def resolve_aliases(configured: dict[str, dict], generated: dict[str, dict]) -> tuple[dict[str, dict], dict[str, str]]:
    """Split generated runs (name -> merged settings) into new runs and aliases.

    A generated run whose settings equal a configured run's (or an earlier
    generated run's) is not run again: it becomes an alias of that run (same
    seeds, so the same numbers).  Returns (new runs, {alias: run}); raises
    ConfigError when a generated name is already a configured run with other
    settings.
    """
    new, aliases = {}, {}
    for name, settings in generated.items():
        if name in configured and configured[name] != settings:
            raise ConfigError(f"runs.{name}: this name is reserved for a generated paper-target run; rename the run")
        same = next((r for r, s in {**configured, **new}.items() if s == settings), None)
        if same is not None:
            if same != name:
                aliases[name] = same
        else:
            new[name] = settings
    return new, aliases


# ---- the switch ablation table --------------------------------------------------------------

def switch_table(summary: pd.DataFrame, switches, unavailable: dict[str, str], benchmark: str,
                 reference_run: str = "par") -> pd.DataFrame:
    """One row per paper-vs-code switch (one run each, all else fixed): AP, AF, M, experts,
    T on ``benchmark`` and the AP change against ``reference_run``.

    ``switches``: :class:`par.paper.ablations.Switch` objects; ``unavailable``: switch
    run -> why it cannot run in this build.  Columns: :data:`par.infra.schemas.SWITCH_ABLATION`.
    """
    import pandas as pd

    from par.infra import schemas
    from par.paper.targets import NOT_RUN

    part = summary[summary.benchmark == benchmark]
    reference = part[part.run == reference_run].AP
    reference_ap = float(reference.mean()) if len(reference) else math.nan
    rows = []
    for switch in switches:
        runs = part[part.run == switch.run]
        why = unavailable.get(switch.run)
        n = 0 if why else len(runs)
        mean = (lambda c: float(runs[c].mean()) if n else math.nan)
        rows.append({"switch": switch.name, "value": str(switch.value), "what": switch.what,
                     "run": None if why else switch.run, "benchmark": benchmark, "n_seeds": n,
                     "AP_mean": mean("AP"), "AP_std": float(runs.AP.std(ddof=1)) if n > 1 else (0.0 if n else math.nan),
                     "AF_mean": mean("AF"), "M_millions_mean": mean("M_millions"), "n_groups_mean": mean("n_groups"),
                     "hours_mean": mean("hours"), "delta_AP": mean("AP") - reference_ap,
                     "status": why or ("ran" if n else NOT_RUN)})
    return pd.DataFrame(rows, columns=schemas.SWITCH_ABLATION.names)


def switch_view(table: pd.DataFrame, reference_run: str = "par") -> pd.DataFrame:
    """:func:`switch_table` with human column names and formatted cells (no NaN)."""
    import pandas as pd

    return pd.DataFrame({
        "switch": table.switch, "value": table.value, "run": table.run.fillna("–"), "seeds": table.n_seeds,
        "AP": [format_number(m) + (f" ± {format_number(s)}" if n > 1 else "") for m, s, n in zip(table.AP_mean, table.AP_std, table.n_seeds)],
        f"ΔAP vs {reference_run}": [format_number(v) for v in table.delta_AP],
        "AF": [format_number(v) for v in table.AF_mean], "M (millions)": [format_number(v) for v in table.M_millions_mean],
        "experts": [format_number(v, 1) for v in table.n_groups_mean], "T (hours)": [format_number(v) for v in table.hours_mean],
        "status": table.status, "what": table.what,
    })


def _switch_title(table: pd.DataFrame, reference_run: str) -> str:
    bench = table.benchmark.iloc[0] if len(table) else ""
    return f"Paper-text switches on {bench}, one run each (everything else as `{reference_run}`)"


def switch_markdown(table: pd.DataFrame, reference_run: str = "par") -> str:
    """Markdown rendering of :func:`switch_table`."""
    return f"## {_switch_title(table, reference_run)}\n\n" + switch_view(table, reference_run).to_markdown(index=False) + "\n"


def switch_html(table: pd.DataFrame, reference_run: str = "par") -> str:
    """HTML page of :func:`switch_table` in the report's style."""
    from par.results.tables import frame_html, html_page

    return html_page(_switch_title(table, reference_run), frame_html(switch_view(table, reference_run)), [
        f"ΔAP: the run's mean AP minus that of `{reference_run}`; M in millions of parameters, T in hours of "
        "summed job wall time; – : no value."])
