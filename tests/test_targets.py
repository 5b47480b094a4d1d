"""The targets file, verdicts on constructed values, the README rendering, and the
plan switches and generated runs behind Table 5, Fig. 3-4 and the switch ablation."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from par.paper.ablations import (SWITCHES, TABLE5_RUNS, resolve_aliases, selected_switches, sweep_runs, switch_runs,
                           switch_status)
from par.infra.config import PIPELINE_SECTIONS, ConfigError, relatedness_variant, run_settings
from par.streams.datasets.catalog import cifar100_coarse_table
from par.planning import ALLOCATE_REUSE, ALLOCATE_SEARCH, REGULARIZE, PlanSettings, plan_tasks
from par.results.plots import task_label
from par.infra.io import CorruptFileError
from par.paper.render import readme_section, render_readme, table_markdown
from par.results.tables import with_aliases
from par.paper.targets import (GAP, NO_PAPER_VALUE, NOT_IN_PAPER, NOT_REPRODUCED, NOT_RUN, OTHER_BENCHMARK, WITHIN,
                               extra_cells, load_targets, runs_not_in_the_paper, table_cells, target_rows, verdict)

REPO = Path(__file__).resolve().parents[1]

def make_plan(distances, n_train, *, seed=0, **settings):
    """plan_tasks with the config schema's planning settings, ``settings`` overriding some."""
    return plan_tasks(distances, n_train, PlanSettings.from_schema(**settings), seed=seed)



def test_targets_file_rows_without_pandas_match_the_frame():
    """The workflow reads the targets with csv while parsing; the tables read the
    same rows as a DataFrame: both agree cell by cell, empty cells as None / NaN."""
    rows, frame = target_rows(), load_targets()
    assert len(rows) == len(frame) > 200
    for row, cell in zip(rows, frame.itertuples(index=False)):
        assert row["table"] == cell.table and row["method"] == cell.method and row["metric"] == cell.metric
        assert (row["value"] is None and np.isnan(cell.value)) or row["value"] == cell.value
        assert (row["run"] is None and pd.isna(cell.run)) or row["run"] == cell.run
    first = rows[0]
    assert (first["table"], first["benchmark"], first["method"], first["metric"], first["value"], first["run"],
            first["tolerance"]) == (1, "ctrl-s-minus", "Finetune", "AP", 0.18, "finetune", 0.02)


@pytest.mark.parametrize("line, message", [
    ("3,cifar100-10,PAR,ACC,0.85,par,0.02", "line 3: unknown metric 'ACC'"),
    ("3,cifar100-10,PAR,AP,0.85,par,", "line 3: every paper value needs a tolerance >= 0"),
    ("3,cifar100-10,PAR,AP,0.85,par,-0.1", "line 3: every paper value needs a tolerance >= 0"),
    ("3,cifar100-10,PAR,AP,high,par,0.02", "line 3: value 'high' is not a number"),
])
def test_a_bad_targets_file_names_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "targets.csv"
    path.write_text("table,benchmark,method,metric,value,run,tolerance\n# a comment\n" + line + "\n")
    with pytest.raises(CorruptFileError, match=f"{path}, {message}"):
        target_rows(path)
    path.write_text("table,benchmark,method,value\n3,cifar100-10,PAR,0.85\n")
    with pytest.raises(CorruptFileError, match=r"missing columns \['metric', 'run', 'tolerance'\]"):
        load_targets(path)


@pytest.mark.parametrize("values, status", [
    ([0.84], WITHIN),                    # |0.84 - 0.853| = 0.013 <= 0.02 + 0 (one seed: std 0)
    ([0.83], GAP),                       # 0.023 > 0.02
    ([0.80, 0.84, 0.88], WITHIN),        # mean 0.84, std 0.04: 0.013 <= 0.06
])
def test_verdict_on_constructed_values(values, status):
    got, mean, std, n = verdict(0.853, 0.02, values)
    assert got == status and n == len(values)
    assert mean == pytest.approx(np.mean(values))


def test_verdict_std_widens_the_band_and_edge_cases():
    # mean 0.80, std 0.02 (values 0.78, 0.80, 0.82): |0.80 - 0.853| = 0.053 > 0.02 + 0.02 -> gap
    assert verdict(0.853, 0.02, [0.78, 0.80, 0.82])[0] == GAP
    # same mean with std 0.04: 0.053 <= 0.06 -> within
    status, mean, std, n = verdict(0.853, 0.02, [0.76, 0.80, 0.84])
    assert (status, n) == (WITHIN, 3) and std == pytest.approx(0.04) and mean == pytest.approx(0.80)
    assert verdict(0.853, 0.02, [])[0] == NOT_RUN
    assert verdict(0.853, 0.02, [0.9], has_run=False)[0] == NOT_REPRODUCED
    assert verdict(float("nan"), None, [0.5])[0] == NO_PAPER_VALUE
    assert verdict(-0.02, 0.02, [-0.04])[0] == WITHIN          # exactly on the band
    assert verdict(1.4, 0.14, [1.6])[0] == GAP                 # M: 10 % of 1.4


def test_targets_file_covers_tables_1_to_5_with_runs_and_tolerances():
    targets = load_targets()
    assert set(targets.table) == {1, 2, 3, 4, 5}
    par = targets[(targets.table == 3) & (targets.method == "PAR") & (targets.benchmark == "cifar100-10")]
    assert dict(zip(par.metric, par.value)) == {"AP": 0.853, "AF": -0.02}
    assert set(par.run) == {"par"} and set(par.tolerance) == {0.02}
    # every Table 5 row maps to a generated run (or par itself)
    t5 = targets[targets.table == 5]
    assert dict(zip(t5.method, t5.run)) == {row: run for row, (run, _) in TABLE5_RUNS.items()}
    assert t5[t5.metric == "T_hours"].tolerance.tolist() == pytest.approx(0.5 * t5[t5.metric == "T_hours"].value)
    assert set(targets[targets.method == "HAT*"].run) == {"hat"}   # our ResNet18 HAT beside the cited AlexNet row
    assert set(targets[targets.table == 1].benchmark) == {"ctrl-s-minus", "ctrl-s-plus", "ctrl-s-in", "ctrl-s-out",
                                                          "ctrl-s-pl", "ctrl-s-long"}


def _summary(rows):
    return pd.DataFrame(rows, columns=["benchmark", "run", "method", "seed", "AP", "AF", "M_millions", "hours",
                                       "critical_path_hours", "n_groups", "extractor_weights"])


def test_table_cells_verdicts_from_a_summary():
    targets = load_targets()
    summary = _summary([("cifar100-10", "par", "par", s, ap, -0.02, 1.4, 1.0, 0.5, 3, "x")
                        for s, ap in enumerate([0.84, 0.85, 0.86])])
    cells = table_cells(targets, summary, 3).set_index(["benchmark", "method", "metric"])
    assert cells.loc[("cifar100-10", "PAR", "AP"), "status"] == WITHIN
    assert cells.loc[("cifar100-10", "PAR", "AP"), "mean"] == pytest.approx(0.85)
    assert cells.loc[("cifar100-10", "PAR", "AP"), "std"] == pytest.approx(0.01)
    assert cells.loc[("miniimagenet-20", "PAR", "AP"), "status"] == NOT_RUN
    assert cells.loc[("cifar100-10", "EWC", "AP"), "status"] == NOT_RUN          # run named, not configured
    assert cells.loc[("cifar100-10", "A-GEM", "AP"), "status"] == NOT_RUN        # agem (SPEC §9), not in this summary
    # a row the paper cites from another paper: its value and source, never NaN (SPEC §9)
    assert cells.loc[("cifar100-10", "GPM*", "AP"), "status"] == "reported from GPM (Saha et al. ICLR 2021; AlexNet)"
    assert cells.loc[("cifar100-10", "GPM*", "AF"), "status"].startswith("reported from GPM")
    table1 = table_cells(targets, summary, 1)
    lmc = table1[(table1.method == "LMC") & (table1.benchmark == "ctrl-s-minus") & (table1.metric == "AP")]
    assert lmc.status.tolist() == ["reported from LMC (Ostapenko et al. NeurIPS 2021)"] and lmc.paper.tolist() == [0.666]
    rendered = table_markdown(table1)
    assert "nan" not in rendered.lower() and "0.666 (reported from LMC" in rendered
    # Table 5 measured on another benchmark: values, no verdict
    t5 = table_cells(targets, with_aliases(summary.assign(benchmark="cifar10-5"), {"t5-reg": "par"}), 5,
                     measured_on={"cifar100-10": "cifar10-5"}).set_index(["method", "metric"])
    assert t5.loc[("4 Reg", "AP"), "status"] == OTHER_BENCHMARK and t5.loc[("4 Reg", "AP"), "n_seeds"] == 3
    assert t5.loc[("1 Fixed", "AP"), "status"] == NOT_RUN


def test_runs_of_methods_not_in_the_paper():
    """A run is extra when its method is neither a run the targets name nor the method of one."""
    runs = {"par": "par", "t5-fixed": "par", "ewc": "ewc", "ewc-lr": "ewc", "si": "si", "si-strong": "si",
            "mine": "finetune", "other": "my-method"}
    assert runs_not_in_the_paper(runs) == ["si", "si-strong", "other"]
    # the targets' run names count as the paper's methods even where no such run is configured
    assert runs_not_in_the_paper({"x": "hat", "y": "si"}) == ["y"]
    rows = [{"run": "ewc"}, {"run": None}, {"run": "odd"}]
    assert runs_not_in_the_paper({"odd": "si", "z": "si", "w": "lwf"}, rows) == ["w"]   # "odd" runs si here


def test_extra_rows_beside_the_papers_rows():
    """si on cifar100-10 (three seeds) fills Tables 3 and 4 there, as mean ± std and no verdict."""
    targets = load_targets()
    summary = _summary([("cifar100-10", "par", "par", 0, 0.85, -0.02, 1.4, 1.0, 0.5, 3, "x")]
                       + [("cifar100-10", "si", "si", s, ap, af, 1.2, 0.5, 0.5, 1, "x")
                          for s, ap, af in [(0, 0.60, 0.10), (1, 0.62, 0.12), (2, 0.64, 0.20)]]
                       + [("cifar10-5", "mine", "my-method", 0, 0.9, 0.0, 1.0, 0.1, 0.1, 1, "x")])
    cells = table_cells(targets, summary, 3, extra_runs=["si", "mine"])
    paper_rows = table_cells(targets, summary, 3)
    assert cells.iloc[:len(paper_rows)].equals(paper_rows)          # the paper's rows as before, extras after
    extra = cells.iloc[len(paper_rows):].set_index(["benchmark", "metric"])
    assert set(extra.method) == {"si"} and set(extra.run) == {"si"}  # "mine" has no Table 3 benchmark
    assert set(extra.status) == {NOT_IN_PAPER} and extra.paper.isna().all() and extra.tolerance.isna().all()
    assert extra.loc[("cifar100-10", "AP"), "mean"] == pytest.approx(0.62)
    assert extra.loc[("cifar100-10", "AP"), "std"] == pytest.approx(0.02)           # sample std, ddof 1
    assert extra.loc[("cifar100-10", "AF"), "mean"] == pytest.approx(0.14)
    assert extra.loc[("cifar100-10", "AF"), "std"] == pytest.approx(0.052915, rel=1e-4)
    assert extra.loc[("cifar100-10", "AP"), "n_seeds"] == 3
    assert extra.loc[("miniimagenet-20", "AP"), "n_seeds"] == 0                    # a column it does not fill
    assert sorted(set(zip(extra.index.get_level_values(0), extra.index.get_level_values(1)))) == \
        sorted(set(zip(paper_rows.benchmark, paper_rows.metric)))                 # the table's own columns
    rendered = table_markdown(cells)
    line = next(row for row in rendered.splitlines() if row.startswith("| si "))
    assert "0.620 ± 0.020" in line and "0.140 ± 0.053" in line and "→" not in line and "(" not in line
    assert "Rows si: runs of methods the paper does not report" in rendered
    t4 = table_cells(targets, summary, 4, extra_runs=["si"])
    si4 = t4[t4.method == "si"]
    par4 = t4[t4.method == "PAR"]
    assert set(zip(si4.benchmark, si4.metric)) == set(zip(par4.benchmark, par4.metric))
    assert si4[(si4.benchmark == "cifar100-10") & (si4.metric == "M_millions")]["mean"].item() == pytest.approx(1.2)
    # Table 5 ablates PAR's components: no extra rows; a run without results: no row
    assert extra_cells(targets, summary.assign(benchmark="cifar100-10"), 5, ["si"]).empty
    assert extra_cells(targets, summary, 3, ["absent"]).empty
    single = table_cells(targets, summary[summary.seed == 0], 3, extra_runs=["si"])
    line = next(row for row in table_markdown(single).splitlines() if row.startswith("| si "))
    assert re.search(r"\| 0\.600\s+\|", line) and "±" not in line                    # one seed: no ± std


def test_readme_section_is_the_rendering_of_the_targets_file():
    readme = (REPO / "docs/reference/paper-targets.md").read_text()
    section = readme_section(load_targets())
    assert section in readme, "docs/reference/paper-targets.md is out of date: run `python -m par.paper.render`"
    assert render_readme(readme, section) == readme
    assert "t5-fixed" in section and "not reproduced (method not implemented here)" not in section
    # only rows no run of ours answers are listed as cited: ER and HAT* have runs (er, hat)
    assert "- Table 1, cited by the paper from other papers (not run here): SG-F (reported from MNTDP" in section
    assert "ER (reported" not in section and "HAT* (reported" not in section


# ---- Table 5 plan switches (SPEC §3 + Table 5) ----------------------------------------------

FAR_AND_NEAR = np.array([[0, 0, 0, 0], [0.6, 0, 0, 0], [0.0, 0.0, 0, 0], [5.0, 5.0, 5.0, 0]])


def test_no_regularization_allocates_every_task():
    d = make_plan(FAR_AND_NEAR, [100] * 4, regularize=False)
    assert [x.group for x in d] == [1, 2, 3, 4]
    # task 2 (s = 0.6 <= beta) and task 3 (s = 0 <= beta) reuse the nearest cell; task 4 searches
    assert [x.strategy for x in d] == [ALLOCATE_SEARCH, ALLOCATE_REUSE, ALLOCATE_REUSE, ALLOCATE_SEARCH]
    assert [x.genotype_source for x in d] == [1, 1, 1, 4]


def test_no_coarse_level_searches_every_new_expert():
    d = make_plan(FAR_AND_NEAR, [100] * 4, reuse_cells=False)
    assert [x.strategy for x in d] == [ALLOCATE_SEARCH, ALLOCATE_SEARCH, REGULARIZE, ALLOCATE_SEARCH]
    assert [x.genotype_source for x in d] == [1, 2, None, 4]
    both = make_plan(FAR_AND_NEAR, [100] * 4, regularize=False, reuse_cells=False)
    assert all(x.searches_cell for x in both)


def test_alpha_beta_one_is_regularization_only():
    d = make_plan(np.full((4, 4), 1e6), [100] * 4, alpha=1.0, beta=1.0)
    assert [x.group for x in d] == [1, 1, 1, 1]


# ---- generated runs --------------------------------------------------------------------------

def test_sweep_runs_and_alpha_beta_check():
    runs = sweep_runs([0.1, 0.5], [0.75, 1.0], fixed_beta=0.75, fixed_alpha=0.5)
    assert runs["alpha-0.1"] == {"method": "par", "planning": {"alpha": 0.1, "beta": 0.75}}
    assert runs["beta-1"]["planning"] == {"alpha": 0.5, "beta": 1.0}
    with pytest.raises(ConfigError, match="paper_targets.alpha_sweep"):
        sweep_runs([0.9], [], fixed_beta=0.75, fixed_alpha=0.5)


def test_switch_runs_only_for_switches_this_build_has():
    config = {"planning": {"head_only_ratio": 0.5}, "search": {"mdl_update": "probs"}, "expert": {},
              "relatedness": {"zero_is_far": False}}
    names = ["planning.head_only_ratio", "search.mdl_update", "expert.factorized_reduce_bn", "relatedness.zero_is_far"]
    runs = switch_runs(names, config)
    assert runs == {"switch-head_only_ratio-0.1": {"method": "par", "planning": {"head_only_ratio": 0.1}},
                    "switch-zero_is_far-true": {"method": "par", "relatedness": {"zero_is_far": True}},
                    "switch-mdl_update-logits": {"method": "par", "search": {"mdl_update": "logits"}}}
    by_name = {s.name: s for s in SWITCHES}
    assert switch_status(by_name["expert.factorized_reduce_bn"], config) == "not in this build"
    assert switch_status(by_name["relatedness.zero_is_far"], config) is None
    with pytest.raises(ConfigError, match="paper_targets.switches"):
        selected_switches(["planning.alpah"])


def test_relatedness_variant_names_the_settings_that_differ():
    default = {"distance_split": "val", "clamp_per_class": True, "zero_is_far": False, "epsilon": 1e-8}
    assert relatedness_variant(dict(default), default) is None
    assert relatedness_variant({**default, "zero_is_far": True}, default) is None   # applied by the plan
    assert relatedness_variant({**default, "clamp_per_class": False}, default) == "clamp_per_class-false"
    assert relatedness_variant({**default, "distance_split": "train", "clamp_per_class": False}, default) == \
        "clamp_per_class-false+distance_split-train"
    assert relatedness_variant({**default, "epsilon": 1e-6}, default) == "epsilon-1e-06"
    settings = run_settings({section: {} for section in PIPELINE_SECTIONS} | {"relatedness": default},
                            {"method": "par", "relatedness": {"zero_is_far": True}}, PIPELINE_SECTIONS)
    assert settings["relatedness"] == {**default, "zero_is_far": True}


def test_generated_runs_equal_to_a_run_become_aliases():
    par = {"method": "par", "planning": {"alpha": 0.5, "beta": 0.75}}
    new, aliases = resolve_aliases({"par": par}, {"alpha-0.5": dict(par), "alpha-0.3": {"method": "par", "x": 1},
                                                  "beta-0.9": {"method": "par", "x": 1}})
    assert aliases == {"alpha-0.5": "par", "beta-0.9": "alpha-0.3"} and list(new) == ["alpha-0.3"]
    with pytest.raises(ConfigError, match="runs.t5-fs"):
        resolve_aliases({"t5-fs": par}, {"t5-fs": {"method": "par", "x": 1}})


def test_task_labels_of_the_figures():
    fine_to_coarse, fine_names, coarse_names = cifar100_coarse_table()
    superclass = {name: coarse_names[c] for name, c in zip(fine_names, fine_to_coarse)}
    aquatic = {"task": 1, "class_names": ["beaver", "dolphin", "otter", "seal", "whale"]}
    assert task_label(aquatic, "cifar100", superclass=superclass, with_dataset=False) == "aquatic mammals"
    mixed = {"task": 2, "class_names": ["beaver", "apple"]}
    assert task_label(mixed, "cifar100", superclass=superclass) == "cifar100: beaver, apple"
    named = {"task": 3, "name": "S-", "dataset": "mnist", "class_names": [str(d) for d in range(10)]}
    assert task_label(named, "ctrl") == "mnist: S-"
    assert task_label({"task": 4, "class_names": list("abcdefg")}, "x", max_names=2) == "x: a, b …"


@pytest.mark.parametrize("table", [1, 2, 3, 4, 5])
def test_rendered_paper_tables_never_read_nan(table):
    """No run configured: every cell is "not run" / "not reproduced" / "reported from …";
    the run column of methods without a run reads "–" and no cell reads NaN."""
    from par.paper.render import table_html
    from par.results.tables import run_summary

    cells = table_cells(load_targets(), run_summary([], {}), table)
    for text in (table_markdown(cells), table_html(f"Table {table}", cells)):
        found = re.search(r"\bnan\b", text, re.IGNORECASE)
        assert not found, text[max(0, found.start() - 300):found.end() + 100]
    if table < 5:  # Table 5: every row is a generated run
        assert "–" in table_markdown(cells)
