"""The run policy without Snakemake (par.runs): which runs a config makes and which
config key reaches which job's params (a key that reaches a job re-runs it when
changed; one that does not, never does)."""
from __future__ import annotations

import copy

import pytest
from snakemake.utils import validate

from par.infra.config import ConfigError
from par.learners.discovery import discover
from par.nets.genotypes import DARTS_V2
from par.nets.specs import body_spec, with_genotype
from par.runs import Param, as_param, canonical_repr, make_runs, search_params, strategy_params, training_params

CATALOG = discover(entry_points=False)
RAW = {"par": {"method": "par"}, "finetune": {"method": "finetune", "training": {"lr": 0.1}},
       "er": {"method": "er"}, "mas": {"method": "mas"}, "hat": {"method": "hat"},
       "independent": {"method": "independent"}}


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    return str(CATALOG.write_config_schema(tmp_path_factory.mktemp("schema") / "config.schema.json"))


def validated(schema, raw=RAW, **sections) -> dict:
    config = {"runs": copy.deepcopy(raw), "paper_targets": {"table5_rows": [], "alpha_sweep": [], "beta_sweep": [],
                                                             "switches": []}, **sections}
    validate(config, schema)
    return config


def runs_of(schema, raw=RAW, **sections):
    return make_runs(validated(schema, raw, **sections), raw, CATALOG.section_names)


def params(runs, run, task=2, assignment=None):
    """(training, strategy) params of learn job ``task`` of ``run``, as the workflow computes them."""
    settings = runs.settings[run]
    method = CATALOG.method(settings["method"])
    a = assignment or method.assignments(5)[task - 1]
    strategy = CATALOG.strategy(a["strategy"])
    return training_params(settings, strategy), strategy_params(settings, method, strategy, a)


PAR_REGULARIZE = {"task": 2, "group": 1, "strategy": "regularize", "predecessor": 1, "group_tasks": [1, 2],
                  "genotype_source": None}
PAR_ALLOCATE = {"task": 3, "group": 2, "strategy": "allocate-search", "predecessor": None, "group_tasks": [3],
                "genotype_source": 3}


def test_runs_merge_each_runs_overrides_into_the_global_sections(schema):
    runs = runs_of(schema, memory={"samples_per_class": 4})
    assert runs.configured == list(RAW) and runs.aliases == {} and runs.variants == {}
    assert runs.settings["finetune"]["training"]["lr"] == 0.1 and runs.settings["er"]["training"]["lr"] == 0.01
    assert runs.settings["er"]["memory"] == {"samples_per_class": 4}
    assert set(runs.settings["par"]) == {"method", *CATALOG.section_names}


def test_generated_runs_aliases_and_relatedness_variants(schema):
    raw = {"par": {"method": "par"}, "t5-fs-reg": {"method": "par", "planning": {"reuse_cells": False}},
           "train-split": {"method": "par", "relatedness": {"distance_split": "train"}}}
    config = validated(schema, raw)
    config["paper_targets"].update(table5_rows=["PAR FS+CS+Reg", "2 FS"], alpha_sweep=[0.5], sweep_beta=0.75)
    runs = make_runs(config, raw, CATALOG.section_names)
    # table 5's PAR row and the alpha sweep's alpha=0.5 equal the configured par: aliases, not runs
    assert runs.aliases == {"alpha-0.5": "par"} and runs.actual("alpha-0.5") == "par" and runs.actual("par") == "par"
    assert list(runs.settings) == ["par", "t5-fs-reg", "train-split", "t5-fs"]
    assert runs.configured == ["par", "t5-fs-reg", "train-split"]
    assert runs.relatedness == {"par": None, "t5-fs-reg": None, "train-split": "distance_split-train", "t5-fs": None}
    assert runs.variants["distance_split-train"]["distance_split"] == "train"
    # a configured run holding a generated name with other settings is refused, naming it
    clash = {"t5-fs": {"method": "par"}, "par": {"method": "par", "planning": {"alpha": 0.4}}}
    config = validated(schema, clash)
    config["paper_targets"]["table5_rows"] = ["2 FS"]
    with pytest.raises(ConfigError, match="runs.t5-fs: this name is reserved"):
        make_runs(config, clash, CATALOG.section_names)
    with pytest.raises(ConfigError, match=r"runs.bad: planning.alpha=0.9 is larger than planning.beta=0.75"):
        runs_of(schema, {"bad": {"method": "par", "planning": {"alpha": 0.9}}})
    # a generated run is checked too: the Table 5 row keeps the global alpha, the configured run not
    own_alpha = {"par": {"method": "par", "planning": {"alpha": 0.5}}}
    config = validated(schema, own_alpha, planning={"alpha": 0.9})
    config["paper_targets"]["table5_rows"] = ["2 FS"]
    with pytest.raises(ConfigError, match=r"runs.t5-fs: planning.alpha=0.9 is larger"):
        make_runs(config, own_alpha, CATALOG.section_names)


def test_switch_runs_are_generated_from_the_config(schema):
    """paper_targets.switches: one PAR run per value of each switch, its one key changed."""
    config = validated(schema, {"par": {"method": "par"}})
    config["paper_targets"]["switches"] = ["planning.group_distance", "relatedness.zero_is_far"]
    runs = make_runs(config, {"par": {"method": "par"}}, CATALOG.section_names)
    assert list(runs.settings) == ["par", "switch-zero_is_far-true", "switch-group_distance-min",
                                   "switch-group_distance-max"]
    assert runs.settings["switch-group_distance-max"]["planning"] == {**runs.settings["par"]["planning"],
                                                                       "group_distance": "max"}
    assert runs.settings["switch-zero_is_far-true"]["relatedness"]["zero_is_far"] is True
    assert runs.relatedness["switch-zero_is_far-true"] is None   # applied by the plan: the distances are shared


def test_patience_reaches_only_the_tasks_that_stop_early(schema):
    runs = runs_of(schema)
    assert "patience" in params(runs, "par", assignment=PAR_ALLOCATE)[0]
    assert "patience" not in params(runs, "par", assignment=PAR_REGULARIZE)[0]
    assert "patience" not in params(runs, "finetune")[0]


def test_neutral_training_values_reach_no_job(schema):
    assert not {"amp", "compile"} & set(params(runs_of(schema), "finetune")[0])
    changed = runs_of(schema, training={"amp": "bf16", "compile": True})
    training = params(changed, "finetune")[0]
    assert (training["amp"], training["compile"]) == ("bf16", True)


def test_a_methods_section_reaches_only_its_own_runs(schema):
    base, changed = runs_of(schema), runs_of(schema, memory={"samples_per_class": 3}, mas={"lambda": 7.0})
    for run in ("finetune", "hat", "independent"):
        assert params(changed, run) == params(base, run), run
    for a in (PAR_ALLOCATE, PAR_REGULARIZE):
        assert params(changed, "par", assignment=a) == params(base, "par", assignment=a)
    assert params(changed, "er")[1]["options"] == {"samples_per_class": 3}
    assert params(base, "er")[1]["options"] == {"samples_per_class": 10}
    assert params(changed, "mas")[1]["options"] == {"lambda": 7.0, "importance": "authors"}


def test_a_chains_first_task_reads_only_keys_without_predecessor(schema):
    base, changed = runs_of(schema), runs_of(schema, memory={"samples_per_class": 3}, mas={"lambda": 7.0})
    assert params(changed, "er", task=1) == params(base, "er", task=1)
    assert params(base, "er", task=1)[1]["options"] == {}
    assert params(changed, "mas", task=1)[1]["options"] == {"importance": "authors"}
    # HAT's first task trains with every key of its section
    assert set(params(base, "hat", task=1)[1]["options"]) == {"s_max", "c", "clamp", "thres_cosh"}


def test_the_body_spec_reaches_the_tasks_that_build_a_fresh_body(schema):
    runs, wide = runs_of(schema), runs_of(schema, backbone={"width": 16}, expert={"channels": 8})
    assert params(runs, "finetune", task=1)[1]["body"] == {"kind": "light_resnet18", "width": 64}
    assert params(wide, "finetune", task=1)[1]["body"] == {"kind": "light_resnet18", "width": 16}
    assert params(wide, "finetune", task=2)[1]["body"] is None      # continues its predecessor
    assert params(wide, "independent", task=2)[1]["body"]["width"] == 16  # fresh body every task
    assert params(wide, "hat", task=1)[1]["body"] == {"kind": "hat_light_resnet18", "width": 16}
    expert = params(wide, "par", assignment=PAR_ALLOCATE)[1]["body"]
    assert expert == {"kind": "expert", **wide.settings["par"]["expert"]} and expert["channels"] == 8
    assert params(wide, "par", assignment=PAR_REGULARIZE)[1] == {
        "body": None, "options": {"lambda": 1.0, "temperature": 2.0}}
    assert body_spec(wide.settings["finetune"], "light_resnet18") == {"kind": "light_resnet18", "width": 16}


CELL = {"normal": [["skip_connect", 0], ["sep_conv_3x3", 1], ["max_pool_3x3", 0], ["avg_pool_3x3", 2],
                   ["dil_conv_3x3", 3], ["skip_connect", 1], ["sep_conv_3x3", 4], ["skip_connect", 0]],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
                   ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]]}


def test_the_learn_job_completes_an_experts_spec_with_the_genotype_of_its_source(schema):
    """The strategy param's body plus the genotype: the searched cell's, or DARTS-V2 (Table 5 "Fixed")."""
    expert = params(runs_of(schema, expert={"channels": 8}), "par", assignment=PAR_ALLOCATE)[1]["body"]
    searched = with_genotype(expert, 1, CELL)
    assert searched == {**expert, "genotype": {**CELL, "normal_concat": [2, 3, 4, 5], "reduce_concat": [2, 3, 4, 5]}}
    assert "genotype" not in expert                                    # the param itself is left alone
    fixed = with_genotype(expert, "darts_v2", None)
    assert fixed["genotype"] == DARTS_V2.to_json() and fixed["genotype"]["normal"][7] == ["dil_conv_3x3", 2]
    with pytest.raises(ValueError, match="cell of task 3"):
        with_genotype(expert, 3, None)                                 # reuses a cell, none given
    resnet = {"kind": "light_resnet18", "width": 16}
    assert with_genotype(resnet, 1, CELL) is resnet and with_genotype(None, 1, CELL) is None


def test_the_run_policy_imports_no_torch():
    """Parse time stays light: par.runs and the body specs are plain Python."""
    import subprocess
    import sys
    code = "import sys, par.runs, par.nets.specs; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_search_params_share_the_training_keys_the_supernet_reads(schema):
    runs = runs_of(schema, training={"brightness": 0.1, "lr": 0.5}, expert={"factorized_reduce_bn": True})
    search = search_params(runs.settings["par"])
    assert search["brightness"] == 0.1 and search["factorized_reduce_bn"] is True and search["lr"] == 0.01
    assert set(search) == set(runs.settings["par"]["search"]) | {"factorized_reduce_bn", "crop_padding", "brightness",
                                                                  "eval_batch_size"}


def test_a_dict_param_prints_its_keys_sorted_at_every_depth():
    """What Snakemake records of a param is its repr: the same items in another order print the same."""
    a = {"lr": 0.01, "body": {"kind": "expert", "channels": 8}, "order": [3, {"z": 1, "a": (2,)}]}
    b = {"order": [3, {"a": (2,), "z": 1}], "body": {"channels": 8, "kind": "expert"}, "lr": 0.01}
    assert repr(a) != repr(b) and repr(as_param(a)) == repr(as_param(b))
    assert repr(as_param(a)) == "{'body': {'channels': 8, 'kind': 'expert'}, 'lr': 0.01, 'order': [3, {'a': (2,), 'z': 1}]}"
    assert canonical_repr([2, 1]) == "[2, 1]" and canonical_repr((1, 2)) == "(1, 2)"   # sequences keep their order
    assert repr(as_param({**a, "lr": 0.02})) != repr(as_param(a))                     # a changed value shows
    sorted_already = {"a": 1, "b": {"c": None, "d": "x"}}
    assert repr(as_param(sorted_already)) == repr(sorted_already)                      # sorted configs: no re-run
    param = as_param(b)
    assert isinstance(param, Param) and list(param) == list(b) and param == b and param is not b  # the job sees b
    assert as_param(3) == 3 and as_param(None) is None
