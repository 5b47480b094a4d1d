"""Paths, wildcard constraints, run settings and the lookups rules share."""
import functools
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Only torch-free modules here: every snakemake call (dry-runs, each SLURM job)
# parses this file, and importing torch would cost seconds (issue 8;
# tests/test_startup.py checks it).
from par.paper.ablations import generated_runs, resolve_aliases
from par.infra.config import ConfigError, check_run, relatedness_variant, run_settings, without_neutral_values
from par.streams.datasets import DATASETS, DatasetUnavailable, locate_source, register_image_folders
from par.infra.io import read_json
from par.learners import get_method
from par.learners.strategies import STRATEGIES
from par.planning import TaskDecision
from par.infra.provenance import cached_code_hash
from par.infra.resume import record_owner, stale_lock_hint
from par.streams.spec import StreamSpecError, load_spec, resolve_tasks, shipped_streams, task_dependencies
from par.streams.validation import InputError, check_results_dir, check_streams

try:
    check_results_dir(config["results_dir"])
except InputError as err:
    raise WorkflowError(str(err))
RESULTS = config["results_dir"].rstrip("/")
BENCHMARK_NAMES = config["benchmarks"]
SEEDS = config["seeds"]
USER_DATASETS = config["datasets"]
try:
    register_image_folders(USER_DATASETS)
except ValueError as err:
    raise WorkflowError(f"datasets: {err}")


def _streams():
    """Every configured benchmark's stream spec: shipped (par/data/streams) or the
    user's own under the config key ``streams`` (a spec or the path of a YAML file)."""
    out = {}
    for name in BENCHMARK_NAMES:
        source = config["streams"].get(name, name)
        if name not in config["streams"] and name not in shipped_streams():
            raise WorkflowError(f"benchmarks: {name!r} is neither a shipped benchmark {sorted(shipped_streams())} "
                                "nor a stream defined under the config key 'streams'")
        try:
            out[name] = load_spec(source, f"streams.{name}" if name in config["streams"] else name)
        except (StreamSpecError, KeyError) as err:
            raise WorkflowError(str(err))
    return out


STREAMS = _streams()


@functools.lru_cache(maxsize=None)
def stream_tasks(bench, seed):
    """Resolved task specs (par.streams.spec.resolve_tasks) of ``bench`` for ``seed``."""
    try:
        return resolve_tasks(STREAMS[bench], int(seed))
    except StreamSpecError as err:
        raise WorkflowError(str(err))


# Bad class names/ids, sizes beyond the data, empty or unreadable dataset sources:
# stop before any job, one line naming stream, task, key or path (par/streams/validation.py).
try:
    check_streams({b: [t for s in SEEDS for t in stream_tasks(b, s)] for b in BENCHMARK_NAMES},
                  config["data_root"], set(USER_DATASETS), ".snakemake/par-dataset-index.json")
except InputError as err:
    raise WorkflowError(str(err))


def results(path):
    """``path`` inside the results folder."""
    return f"{RESULTS}/{path}"


def _settings():
    out = {}
    for name, raw in RAW_RUNS.items():
        settings = run_settings(config, raw)
        try:
            check_run(name, settings)
        except ConfigError as err:
            raise WorkflowError(str(err))
        out[name] = settings
    return out


RUNS = _settings()
CONFIG_RUNS = list(RUNS)
PLAN_RUNS = [r for r in CONFIG_RUNS if get_method(RUNS[r]["method"]).needs_plan]


def _generated_runs():
    """Runs of the paper targets (Table 5, sweeps, switches), minus those equal to a run."""
    try:
        settings = {name: run_settings(config, raw) for name, raw in generated_runs(PAPER_TARGETS, config).items()}
        for name, s in settings.items():
            check_run(name, s)
        return resolve_aliases(RUNS, settings)
    except ConfigError as err:
        raise WorkflowError(str(err))


PAPER_TARGETS = config["paper_targets"]
GENERATED_RUNS, RUN_ALIASES = _generated_runs()
RUNS.update(GENERATED_RUNS)

# Runs that override `relatedness` get their own distances (and, for another split,
# features), named by the settings that differ; the global settings keep the default paths.
RUN_RELATEDNESS = {r: relatedness_variant(s["relatedness"], config["relatedness"]) for r, s in RUNS.items()}
RELATEDNESS_VARIANTS = {v: RUNS[r]["relatedness"] for r, v in RUN_RELATEDNESS.items() if v is not None}


wildcard_constraints:
    bench="|".join(map(re.escape, STREAMS)),
    dataset="|".join(map(re.escape, [*DATASETS, *USER_DATASETS])),
    seed=r"\d+",
    run="|".join(map(re.escape, RUNS)),
    task=r"[1-9]\d*",
    split_folder="(split-(val|train)/)?",
    variant_folder="(variants/(" + ("|".join(map(re.escape, RELATEDNESS_VARIANTS)) or "no-variant") + ")/)?",


def n_tasks(bench):
    return STREAMS[bench].n_tasks


def get_task_spec(wildcards):
    """The resolved spec of task ``wildcards.task`` (its params: a task's own entry only)."""
    tasks = stream_tasks(wildcards.bench, wildcards.seed)
    task = int(wildcards.task)
    if task > len(tasks):
        raise WorkflowError(f"{wildcards.bench} has {len(tasks)} tasks; task {task} does not exist")
    return tasks[task - 1]


def dataset_images(dataset):
    return results(f"data/{dataset}/images.h5")


def get_images_path(wildcards):
    """images.h5 of the dataset of task ``wildcards.task`` (only that one)."""
    return dataset_images(get_task_spec(wildcards)["dataset"])


def task_path(bench, seed, task):
    return results(f"data/{bench}/seed{seed}/task{task}.json")


def get_task_json(wildcards):
    return task_path(wildcards.bench, wildcards.seed, wildcards.task)


def get_prepare_task_input(wildcards):
    """The task's dataset and the prepared tasks it refers to (same_as)."""
    spec = get_task_spec(wildcards)
    return {"images": dataset_images(spec["dataset"]),
            "earlier": [task_path(wildcards.bench, wildcards.seed, j) for j in task_dependencies(spec)]}


def get_all_task_jsons(wildcards):
    return [task_path(wildcards.bench, wildcards.seed, t) for t in range(1, n_tasks(wildcards.bench) + 1)]


def get_run_distances(wildcards):
    """The distances a run plans from: the default file, or its relatedness variant's."""
    variant = RUN_RELATEDNESS[wildcards.run]
    folder = "" if variant is None else f"variants/{variant}/"
    return results(f"relatedness/{wildcards.bench}/seed{wildcards.seed}/{folder}distances.parquet")


def get_relatedness(wildcards):
    """The relatedness settings of a distances job: the global ones, or its variant's."""
    folder = wildcards.variant_folder
    return config["relatedness"] if not folder else RELATEDNESS_VARIANTS[folder[len("variants/"):-1]]


def get_feature_split(wildcards):
    """The split an extract_features job reads: the global distance split, or its folder's."""
    folder = wildcards.split_folder
    return config["relatedness"]["distance_split"] if not folder else folder[len("split-"):-1]


def _split_folder(wildcards):
    split = get_relatedness(wildcards)["distance_split"]
    return "" if split == config["relatedness"]["distance_split"] else f"split-{split}/"


def get_variant_features(wildcards):
    """Features of every task in the distances job's split (the default files for the global split)."""
    return [results(f"features/{wildcards.bench}/seed{wildcards.seed}/{_split_folder(wildcards)}task{t}.h5")
            for t in range(1, n_tasks(wildcards.bench) + 1)]


def get_variant_prototypes(wildcards):
    """Prototypes of every task in the distances job's split."""
    folder = _split_folder(wildcards)
    return [results(f"features/{wildcards.bench}/seed{wildcards.seed}/{folder}prototypes/task{t}.h5")
            for t in range(1, n_tasks(wildcards.bench) + 1)]


def run_dir(wildcards):
    return results(f"runs/{wildcards.bench}/seed{wildcards.seed}/{wildcards.run}")


def mem_mb_per_attempt(mb):
    """``mem_mb`` growing with Snakemake's attempt (mb, 2 mb, 3 mb): a job the
    scheduler killed for memory is retried with more (``retries`` in the SLURM profile)."""
    return lambda wildcards, attempt: mb * attempt


# This file's folder, not the working directory's nor the main Snakefile's: the workflow
# also runs as a module of another project's Snakefile (docs/how-to/use-as-module.md).
SCRIPTS = Path(workflow.current_basedir).parent / "scripts"


@functools.lru_cache(maxsize=None)
def code_version(script):
    """The param ``code`` of a rule: a hash of workflow/scripts/``script`` and
    of every par module it imports, transitively (par.infra.provenance.code_hash),
    so that a change of the library re-runs exactly the jobs that execute it.
    Memoised on disk by file signatures (par.infra.provenance.cached_code_hash)."""
    return cached_code_hash(SCRIPTS / script)


def get_gpu_request(wildcards):
    """1 GPU per compute job, unless the config pins the CPU."""
    return 0 if config["device"] == "cpu" else 1


def get_priority(wildcards):
    """Jobs of runs that follow a plan (PAR) start before the baselines' when both
    are ready: PAR's experts are the slowest learn jobs and each task group is a
    chain of them, so on few cores a baseline started first leaves that chain
    running alone at the end (README, Measured: the CPU demo).  Snakemake
    starts ready jobs in priority order; it changes no result."""
    return 1 if get_method(RUNS[wildcards.run]["method"]).needs_plan else 0


# The relatedness stage (features, prototypes, distances, the plan) feeds only the plans, and
# PAR's whole chain waits behind the plan: started before the baselines' learn jobs, it lets
# the chain start minutes earlier on few cores (README, Measured: the CPU demo).
RELATEDNESS_PRIORITY = 1


# ---- the plan checkpoint and the assignment of each task --------------------------------

@functools.lru_cache(maxsize=None)
def _read_plan(path, mtime):
    return [TaskDecision.from_json(d) for d in read_json(path)["tasks"]]


def get_plan_decisions(wildcards):
    """The run's plan (list of TaskDecision), once the checkpoint has run."""
    path = checkpoints.plan.get(bench=wildcards.bench, seed=wildcards.seed, run=wildcards.run).output.plan
    return _read_plan(path, Path(path).stat().st_mtime_ns)


def get_assignments(wildcards):
    """Every task's assignment in this run (see par.learners.methods)."""
    method = get_method(RUNS[wildcards.run]["method"])
    plan = get_plan_decisions(wildcards) if method.needs_plan else None
    return method.assignments(n_tasks(wildcards.bench), plan)


def get_assignment(wildcards):
    task = int(wildcards.task)
    if task > n_tasks(wildcards.bench):
        raise WorkflowError(f"{wildcards.bench} has {n_tasks(wildcards.bench)} tasks; task {task} does not exist")
    return get_assignments(wildcards)[task - 1]


def get_learn_task_input(wildcards):
    """The prepared tasks it trains and tests on (the group's tasks), their datasets'
    images, the predecessor's state and the cell file, as the plan says."""
    a = get_assignment(wildcards)
    tasks = stream_tasks(wildcards.bench, wildcards.seed)
    tested = sorted(set(a["group_tasks"]) | {a["task"]})
    inputs = {"images": sorted({dataset_images(tasks[u - 1]["dataset"]) for u in tested}),
              "tasks": [task_path(wildcards.bench, wildcards.seed, u) for u in tested]}
    if a["predecessor"] is not None:
        inputs["predecessor"] = f"{run_dir(wildcards)}/states/task{a['predecessor']}.pt"
    if isinstance(a["genotype_source"], int):
        inputs["cell"] = f"{run_dir(wildcards)}/cells/task{a['genotype_source']}.json"
    return inputs


def get_search_params(wildcards):
    """The run's MDL search settings, with the expert's FactorizedReduce (docs/spec.md §4) and
    the training section's augmentation and evaluation batch, which the supernet's
    training through par.training.fit shares."""
    settings = RUNS[wildcards.run]
    shared = {k: settings["training"][k] for k in ("crop_padding", "brightness", "eval_batch_size")}
    return {**settings["search"], "factorized_reduce_bn": settings["expert"]["factorized_reduce_bn"], **shared}


def get_training_params(wildcards):
    """The run's training settings that matter for this task's strategy: patience
    only where the strategy stops early (par.training.fit reads Strategy.early_stopping;
    leaving it out here keeps a change of patience from rerunning the other tasks)."""
    settings = without_neutral_values("training", RUNS[wildcards.run]["training"])  # par.infra.config.NEUTRAL_VALUES
    if not STRATEGIES[get_assignment(wildcards)["strategy"]].early_stopping:
        settings.pop("patience")
    return settings


def get_strategy_params(wildcards):
    """Fresh-body spec and the strategy's own config section (its keys the task
    uses: without a predecessor, only those of the after-task hook), only where
    the strategy uses them."""
    a = get_assignment(wildcards)
    strategy = a["strategy"]
    params = {
        "body": body_spec(wildcards) if STRATEGIES[strategy].fresh_body or a["predecessor"] is None else None,
    }
    if STRATEGIES[strategy].config_section is not None:
        params["options"] = strategy_section(STRATEGIES[strategy], a, RUNS[wildcards.run])
    return params


def strategy_section(cls, a, settings):
    """The keys of ``cls.config_section`` that task ``a`` uses."""
    keys = cls.config_keys if a["predecessor"] is not None else cls.keys_without_predecessor
    return {k: settings[cls.config_section][k] for k in keys}


def body_spec(wildcards):
    """The spec of a fresh body, without the genotype (read from the cell file)."""
    settings = RUNS[wildcards.run]
    if get_method(settings["method"]).body_kind == "expert":
        return {"kind": "expert", **settings["expert"]}
    return {"kind": get_method(settings["method"]).body_kind, **settings["backbone"]}  # light_resnet18, HAT's gated one, pn, ltg, mntdp


def get_report_item(path, category, caption, subcategory, labels):
    """An output of rule tables marked for the report (workflow/report/*.rst captions)."""
    return report(results(path), category=category, subcategory=subcategory, caption=caption, labels=labels)


def get_run_outputs(wildcards):
    """Learn-task records of every task, and for PAR the plan and searched cells."""
    files = {"records": [f"{run_dir(wildcards)}/states/task{t}.json" for t in range(1, n_tasks(wildcards.bench) + 1)]}
    if get_method(RUNS[wildcards.run]["method"]).needs_plan:
        files["plan"] = f"{run_dir(wildcards)}/plan.json"
        files["cells"] = [f"{run_dir(wildcards)}/cells/task{d.task}.json"
                          for d in get_plan_decisions(wildcards) if d.searches_cell]
    return files


METRICS = [results(f"runs/{b}/seed{s}/{r}/metrics.parquet") for b in BENCHMARK_NAMES for s in SEEDS for r in CONFIG_RUNS]
TABLES = [results(f"tables/{name}") for name in
          ("summary.parquet", "summary.md", "aggregate.parquet", "aggregate.md", "ap_vs_parameters.png")]
# What the report shows of every run (rule tables, report.smk): one entry per (bench, seed[, run]).
REPORT_SEEDS = [(b, s) for b in BENCHMARK_NAMES for s in SEEDS]
REPORT_RUNS = [(b, s, r) for b in BENCHMARK_NAMES for s in SEEDS for r in CONFIG_RUNS]


# ---- stop before any job when data or weights cannot be had ------------------------------

def check_inputs_available():
    """Raise one WorkflowError naming everything missing (datasets, extractor
    weights) that cannot be downloaded, and what to place where."""
    problems = []
    used = sorted({t["dataset"] for b in BENCHMARK_NAMES for s in SEEDS for t in stream_tasks(b, s)})
    for dataset in used:
        if Path(results(f"data/{dataset}/images.h5")).exists():
            continue
        if dataset not in DATASETS:
            problems.append(f"Dataset '{dataset}' used by a stream is neither known {sorted(DATASETS)} nor "
                            "defined under the config key 'datasets'")
            continue
        try:
            locate_source(dataset, config["data_root"])
        except DatasetUnavailable as err:
            problems.append(str(err))
    features = [results(f"features/{b}/seed{s}/task{t}.h5")
                for b in BENCHMARK_NAMES for s in SEEDS for t in range(1, n_tasks(b) + 1)]
    if PLAN_RUNS and not all(Path(f).exists() for f in features):
        from par.relatedness.extractor import ExtractorWeightsUnavailable, check_weights  # imports torch: only when needed

        try:
            check_weights(config["extractor"]["weights"])
        except ExtractorWeightsUnavailable as err:
            problems.append(str(err))
    if problems:
        raise WorkflowError("Nothing was run:\n\n" + "\n\n".join(problems))


onstart:
    check_inputs_available()
    record_owner()  # who holds the lock, for `python -m par.infra.resume` (par/infra/resume.py)


# A lock left by a killed Snakemake: say so, and name the command that resumes.
if (_hint := stale_lock_hint()) is not None:
    print(_hint, file=sys.stderr)
