"""Every Parquet file the pipeline writes, column by column, in one place.

Each column's description is stored in the field metadata of the file itself
(key ``description``), so ``pyarrow.parquet.read_schema(path)`` documents it.
"""
from __future__ import annotations

import pyarrow as pa


def _schema(*columns: tuple[str, pa.DataType, str]) -> pa.Schema:
    return pa.schema([pa.field(name, dtype, metadata={"description": text}) for name, dtype, text in columns])


RUN_KEY = (
    ("benchmark", pa.string(), "benchmark name, e.g. cifar10-5"),
    ("seed", pa.int64(), "seed of the task order, splits and initialisation"),
    ("run", pa.string(), "run name from the config (method + hyperparameter variant)"),
    ("method", pa.string(), "method: par, finetune, independent"),
)

DISTANCES = _schema(
    ("i", pa.int64(), "new task i (1-based)"),
    ("j", pa.int64(), "other task j (1-based)"),
    ("kl", pa.float64(), "Nearest-Prototype KL estimate KL(q_i || q_j), Eq. 4"),
)

ACCURACY_MATRIX = _schema(
    *RUN_KEY,
    ("after_task", pa.int64(), "t: the model state after learning task t"),
    ("task", pa.int64(), "u <= t: the task tested"),
    ("accuracy", pa.float64(), "r[t][u], test accuracy (fraction)"),
    ("measured", pa.bool_(), "false when carried from an earlier row (u outside t's group)"),
)

TASKS = _schema(
    *RUN_KEY,
    ("task", pa.int64(), "task number (1-based)"),
    ("group", pa.int64(), "task group (PAR) / model index"),
    ("strategy", pa.string(), "allocate-search, allocate-reuse, regularize, regularize-head, finetune, independent"),
    ("predecessor", pa.int64(), "task whose state this task continued from (null: fresh model)"),
    ("genotype_source", pa.string(), "task whose searched cell the expert uses, 'darts_v2', or null"),
    ("n_train", pa.int64(), "training images"),
    ("n_params", pa.int64(), "parameters of the model after this task (body and all its heads)"),
    ("accuracy_when_learned", pa.float64(), "r[u][u]"),
    ("final_accuracy", pa.float64(), "r[N][u]"),
    ("forgetting", pa.float64(), "r[N][u] - r[u][u]"),
    ("val_accuracy", pa.float64(), "best validation accuracy while learning the task"),
    ("epochs_run", pa.int64(), "epochs trained (early stopping may cut them)"),
    ("search_seconds", pa.float64(), "seconds of this task's cell search (0 if none)"),
    ("seconds", pa.float64(), "seconds of the learn-task job (training + testing)"),
)

METRICS = _schema(
    *RUN_KEY,
    ("n_tasks", pa.int64(), "N"),
    ("n_groups", pa.int64(), "task groups = models allocated"),
    ("AP", pa.float64(), "average performance, mean_u r[N][u] (Eq. 11)"),
    ("AF", pa.float64(), "average forgetting, mean_u r[N][u] - r[u][u] (Eq. 11, <= 0)"),
    ("diagonal_mean", pa.float64(), "mean_u r[u][u]"),
    ("n_params", pa.int64(), "M: parameters of all final experts/backbones and heads"),
    ("M_millions", pa.float64(), "n_params / 1e6"),
    ("hours", pa.float64(), "T: wall time of all learn and search jobs, summed (hours)"),
    ("critical_path_hours", pa.float64(), "longest chain of dependent jobs (hours)"),
    ("extractor_weights", pa.string(), "weights of the relatedness extractor ('unused' for baselines)"),
    ("device", pa.string(), "device(s) the learn jobs ran on"),
)

SUMMARY = _schema(
    ("benchmark", pa.string(), "benchmark name"),
    ("run", pa.string(), "run name from the config"),
    ("method", pa.string(), "method"),
    ("seed", pa.int64(), "seed"),
    ("AP", pa.float64(), "average performance (Eq. 11)"),
    ("AF", pa.float64(), "average forgetting (Eq. 11)"),
    ("M_millions", pa.float64(), "parameters of all experts and heads, millions"),
    ("hours", pa.float64(), "summed wall time of learn and search jobs, hours"),
    ("critical_path_hours", pa.float64(), "critical path of the run's DAG, hours"),
    ("n_groups", pa.int64(), "task groups (models allocated)"),
    ("extractor_weights", pa.string(), "relatedness extractor weights"),
)

AGGREGATE = _schema(
    ("benchmark", pa.string(), "benchmark name"),
    ("run", pa.string(), "run name from the config"),
    ("method", pa.string(), "method"),
    ("n_seeds", pa.int64(), "seeds aggregated"),
    ("AP_mean", pa.float64(), "mean AP over seeds"),
    ("AP_std", pa.float64(), "sample std of AP over seeds (NaN for one seed)"),
    ("AF_mean", pa.float64(), "mean AF"),
    ("AF_std", pa.float64(), "std AF"),
    ("M_millions_mean", pa.float64(), "mean parameter count, millions"),
    ("M_millions_std", pa.float64(), "std parameter count"),
    ("hours_mean", pa.float64(), "mean summed wall time, hours"),
    ("hours_std", pa.float64(), "std summed wall time"),
    ("paper_AP", pa.float64(), "the paper's AP for this benchmark and method (null if none)"),
    ("paper_AF", pa.float64(), "the paper's AF"),
    ("paper_M_millions", pa.float64(), "the paper's parameter count, millions"),
    ("paper_hours", pa.float64(), "the paper's T (hours)"),
    ("paper_source", pa.string(), "paper tables the values come from, e.g. 'AP,AF: Table 3; M: Table 4'"),
    ("extractor_weights", pa.string(), "relatedness extractor weights (all seeds)"),
)

TARGET_CELLS = _schema(
    ("table", pa.int64(), "paper table (1-5)"),
    ("benchmark", pa.string(), "the paper's benchmark of the cell"),
    ("method", pa.string(), "the paper's row label"),
    ("metric", pa.string(), "AP, AF, M_millions or T_hours"),
    ("paper", pa.float64(), "the paper's value (null where it prints '-')"),
    ("tolerance", pa.float64(), "two-sided tolerance on the mean (targets file)"),
    ("run", pa.string(), "run reproducing the row (null: method not implemented)"),
    ("measured_on", pa.string(), "benchmark the run was made on (Table 5: paper_targets.ablation_benchmark)"),
    ("n_seeds", pa.int64(), "seeds with results"),
    ("mean", pa.float64(), "mean over seeds (NaN when not run)"),
    ("std", pa.float64(), "sample std over seeds (0 for one seed)"),
    ("status", pa.string(), "within tolerance | gap | not run | not reproduced | no paper value | other benchmark | "
                           "not in the paper (an extra row: a run of a method the paper does not report) | "
                           "reported from <paper> (a row the paper cites, par/data/paper_sources.csv)"),
)

SWITCH_ABLATION = _schema(
    ("switch", pa.string(), "config key section.key of the paper-vs-code switch"),
    ("value", pa.string(), "the non-default value the run sets (defaults follow the authors' code)"),
    ("what", pa.string(), "what the switch changes"),
    ("run", pa.string(), "generated run name (null when it cannot run in this build)"),
    ("benchmark", pa.string(), "benchmark of the ablation (paper_targets.ablation_benchmark)"),
    ("n_seeds", pa.int64(), "seeds with results"),
    ("AP_mean", pa.float64(), "mean AP over seeds"),
    ("AP_std", pa.float64(), "std AP"),
    ("AF_mean", pa.float64(), "mean AF"),
    ("M_millions_mean", pa.float64(), "mean parameter count, millions"),
    ("n_groups_mean", pa.float64(), "mean number of experts"),
    ("hours_mean", pa.float64(), "mean summed wall time, hours"),
    ("delta_AP", pa.float64(), "AP_mean minus the AP of the reference run (par)"),
    ("status", pa.string(), "ran | not run | not in this build | not ablatable (...)"),
)

# ---- PROVENANCE ---------------------------------------------------------------------------
# Every output carries one provenance dict, built by par.infra.provenance.provenance():
# Parquet files in their footer metadata (key ``provenance``, JSON), JSON records
# (task<t>.json, plan.json, cells/task*.json, states/task*.json) under the key
# ``provenance``, HDF5 files (features/…/task*.h5, prototypes/task*.h5) in the attribute
# ``provenance`` (JSON).  par.infra.provenance.read_provenance(path) reads any of them.
PROVENANCE = {
    "code_hash": "'sha256:<hex>' of the job's script and every par module it imports, transitively "
                 "(par.infra.provenance.code_hash; the rule's param 'code')",
    "config": "the job's resolved config: its params as Snakemake passed them, without 'code' (JSON object)",
    "versions": "versions of python, torch, torchvision, numpy and snakemake in the job's environment",
    "lock": "'sha256:<hex>' of requirements.lock beside the par package (every package of the environment "
            "pinned with hashes; par.infra.provenance.lock_hash), null where there is none (par installed "
            "from a wheel); recorded only: a new lock re-runs no job",
    "device": "where the job computed: 'cpu (N threads)' or 'cuda:i <GPU name>' for torch jobs, "
              "'cpu' for bookkeeping jobs",
    "extractor_weights": "the relatedness extractor's weights (par.relatedness.extractor.weights_provenance) of the features "
                         "this output derives from; 'unused' for baseline metrics; null where the job reads no "
                         "features (learn_task, search_cell, prepare_stream, tables: see upstream)",
    "upstream": "only where the job read inputs that carry provenance: the union over those inputs (and their "
                "own upstream) of PROVENANCE_UPSTREAM's keys, so the tables list everything they combine",
}
PROVENANCE_UPSTREAM = {
    "code_hash": "sorted distinct code hashes of every job the inputs came from",
    "extractor_weights": "sorted distinct extractor weights of the inputs",
    "device": "sorted distinct devices the inputs were computed on",
    "lock": "sorted distinct lock file hashes of the inputs (null ones left out)",
    "versions": "distinct version sets of the inputs (list of objects like 'versions')",
}
