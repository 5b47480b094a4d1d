"""Paths, wildcard constraints, run settings and the lookups rules share."""
import functools
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Only torch-free modules here: every snakemake call (dry-runs, each SLURM job)
# parses this file, and importing torch would cost seconds (issue 8;
# tests/test_startup.py checks it).
from par.benchmarks import BENCHMARKS
from par.config import ConfigError, check_run, run_settings
from par.datasets import DATASETS, DatasetUnavailable, locate_source
from par.io import read_json
from par.learners import get_method
from par.learners.strategies import STRATEGIES
from par.planning import TaskDecision
from par.provenance import code_hash

RESULTS = config["results_dir"].rstrip("/")
BENCHMARK_NAMES = config["benchmarks"]
SEEDS = config["seeds"]


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
PLAN_RUNS = [r for r, s in RUNS.items() if get_method(s["method"]).needs_plan]


wildcard_constraints:
    bench="|".join(map(re.escape, BENCHMARKS)),
    dataset="|".join(map(re.escape, DATASETS)),
    seed=r"\d+",
    run="|".join(map(re.escape, RUNS)),
    task=r"[1-9]\d*",


def n_tasks(bench):
    return BENCHMARKS[bench].n_tasks


def images_path(wildcards):
    return results(f"data/{BENCHMARKS[wildcards.bench].dataset}/images.h5")


def task_features(wildcards):
    return [results(f"features/{wildcards.bench}/seed{wildcards.seed}/task{t}.h5")
            for t in range(1, n_tasks(wildcards.bench) + 1)]


def stream_path(wildcards):
    return results(f"data/{wildcards.bench}/seed{wildcards.seed}/stream.json")


def run_dir(wildcards):
    return results(f"runs/{wildcards.bench}/seed{wildcards.seed}/{wildcards.run}")


@functools.lru_cache(maxsize=None)
def code_version(script):
    """The param ``code`` of a rule: a hash of workflow/scripts/``script`` and
    of every par module it imports, transitively (par.provenance.code_hash),
    so that a change of the library re-runs exactly the jobs that execute it."""
    return code_hash(Path(workflow.basedir) / "workflow" / "scripts" / script)


def gpu_request(wildcards):
    """1 GPU per compute job, unless the config pins the CPU."""
    return 0 if config["device"] == "cpu" else 1


# ---- the plan checkpoint and the assignment of each task --------------------------------

@functools.lru_cache(maxsize=None)
def _read_plan(path, mtime):
    return [TaskDecision.from_json(d) for d in read_json(path)["tasks"]]


def plan_decisions(wildcards):
    """The run's plan (list of TaskDecision), once the checkpoint has run."""
    path = checkpoints.plan.get(bench=wildcards.bench, seed=wildcards.seed, run=wildcards.run).output.plan
    return _read_plan(path, Path(path).stat().st_mtime_ns)


def assignments(wildcards):
    """Every task's assignment in this run (see par.learners.methods)."""
    method = get_method(RUNS[wildcards.run]["method"])
    plan = plan_decisions(wildcards) if method.needs_plan else None
    return method.assignments(n_tasks(wildcards.bench), plan)


def assignment(wildcards):
    task = int(wildcards.task)
    if task > n_tasks(wildcards.bench):
        raise WorkflowError(f"{wildcards.bench} has {n_tasks(wildcards.bench)} tasks; task {task} does not exist")
    return assignments(wildcards)[task - 1]


def learn_task_input(wildcards):
    """Images, stream, the predecessor's state and the cell file, as the plan says."""
    a = assignment(wildcards)
    inputs = {"images": images_path(wildcards), "stream": stream_path(wildcards)}
    if a["predecessor"] is not None:
        inputs["predecessor"] = f"{run_dir(wildcards)}/states/task{a['predecessor']}.pt"
    if isinstance(a["genotype_source"], int):
        inputs["cell"] = f"{run_dir(wildcards)}/cells/task{a['genotype_source']}.json"
    return inputs


def training_params(wildcards):
    """The run's training settings that matter for this task's strategy."""
    settings = dict(RUNS[wildcards.run]["training"])
    if not STRATEGIES[assignment(wildcards)["strategy"]].early_stopping:
        settings.pop("patience")
    return settings


def strategy_params(wildcards):
    """Fresh-body spec, LwF settings and the strategy's own config section (its
    keys the task uses: without a predecessor, only those of the after-task
    hook), only where the strategy uses them."""
    a = assignment(wildcards)
    strategy = a["strategy"]
    params = {
        "body": body_spec(wildcards) if STRATEGIES[strategy].fresh_body or a["predecessor"] is None else None,
        "lwf": RUNS[wildcards.run]["lwf"] if strategy == "regularize" else None,
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
    return {"kind": "light_resnet18", **settings["backbone"]}


def run_outputs(wildcards):
    """Learn-task records of every task, and for PAR the plan and searched cells."""
    files = {"records": [f"{run_dir(wildcards)}/states/task{t}.json" for t in range(1, n_tasks(wildcards.bench) + 1)]}
    if get_method(RUNS[wildcards.run]["method"]).needs_plan:
        files["plan"] = f"{run_dir(wildcards)}/plan.json"
        files["cells"] = [f"{run_dir(wildcards)}/cells/task{d.task}.json"
                          for d in plan_decisions(wildcards) if d.searches_cell]
    return files


METRICS = [results(f"runs/{b}/seed{s}/{r}/metrics.parquet") for b in BENCHMARK_NAMES for s in SEEDS for r in RUNS]
TABLES = [results(f"tables/{name}") for name in
          ("summary.parquet", "summary.md", "aggregate.parquet", "aggregate.md", "ap_vs_parameters.png")]


# ---- stop before any job when data or weights cannot be had ------------------------------

def check_inputs_available():
    """Raise one WorkflowError naming everything missing (datasets, extractor
    weights) that cannot be downloaded, and what to place where."""
    problems = []
    for dataset in sorted({BENCHMARKS[b].dataset for b in BENCHMARK_NAMES}):
        if not Path(results(f"data/{dataset}/images.h5")).exists():
            try:
                locate_source(dataset, config["data_root"])
            except DatasetUnavailable as err:
                problems.append(str(err))
    features = [results(f"features/{b}/seed{s}/task{t}.h5")
                for b in BENCHMARK_NAMES for s in SEEDS for t in range(1, n_tasks(b) + 1)]
    if PLAN_RUNS and not all(Path(f).exists() for f in features):
        from par.extractor import ExtractorWeightsUnavailable, check_weights  # imports torch: only when needed

        try:
            check_weights(config["extractor"]["weights"])
        except ExtractorWeightsUnavailable as err:
            problems.append(str(err))
    if problems:
        raise WorkflowError("Nothing was run:\n\n" + "\n\n".join(problems))


onstart:
    check_inputs_available()
