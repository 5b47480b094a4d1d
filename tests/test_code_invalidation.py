"""A change of library code re-runs exactly the jobs that execute it,
every output records its provenance, and parsing the workflow imports no torch.

The workflow tests run a copy of the repository (Snakefile, workflow/, par/,
config/) with PYTHONPATH pointing at the copy, so that a test can edit the
copy's library: one full tiny run, then for each case a comment line appended
to one module, a dry-run, and the module restored.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import snakemake as snakemake_package
import torch
import torchvision
import yaml

from par.infra import schemas
from par.infra import provenance
from par.infra.provenance import cached_code_hash, code_files, code_hash, imported_modules, read_provenance
from par.learners.discovery import discover
from test_startup import SNAKEMAKE_WATCHING_IMPORTS
from test_workflow import config_for, fork, scheduled_jobs

REPO = Path(__file__).resolve().parents[1]
RUNS = ("par", "finetune")
TASKS = range(1, 6)
WEIGHTS = "torchvision resnet18 random init (seed 0)"
LOCK = provenance.lock_hash(REPO / "requirements.lock")  # the copy's lock has the same bytes


# ---- the import closure, on a small generated package -------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def package(tmp_path):
    """``pkg`` with absolute, relative, function-level and package imports."""
    root = tmp_path / "pkg"
    write(root / "__init__.py", '"""top package"""\n')
    write(root / "a.py", "import numpy\nfrom pkg import b\n")
    write(root / "b.py", "from .sub import d\n")
    write(root / "c.py", "X = 1\n")
    write(root / "unused.py", "import pkg.c\n")
    write(root / "sub" / "__init__.py", "")
    write(root / "sub" / "d.py", "def f():\n    from ..c import X\n    return X\n")
    write(root / "sub" / "e.py", "from pkg.sub.d import f\n")
    write(root / "reader.py", 'TABLE = "data/table.csv"\n')
    write(root / "data" / "table.csv", "a,b\n1,2\n")
    script = write(tmp_path / "scripts" / "job.py", "import os\nfrom pkg.a import something\n")
    return root, script


def test_import_closure_follows_every_kind_of_import(package):
    root, script = package
    # pkg.a -> pkg.b -> (relative) pkg.sub.d -> (inside a function, two levels up) pkg.c;
    # pkg.sub's __init__ runs on the way; numpy and os are not followed; unused.py, e.py are not imported
    assert imported_modules(script, root) == sorted(
        (root / p).resolve() for p in ("__init__.py", "a.py", "b.py", "c.py", "sub/__init__.py", "sub/d.py"))
    assert imported_modules(root / "sub" / "e.py", root) == sorted(
        (root / p).resolve() for p in ("__init__.py", "c.py", "sub/__init__.py", "sub/d.py"))
    reader = write(script.parent / "read.py", "import pkg.reader\n")
    assert code_files(reader, root)[-1] == (root / "data" / "table.csv").resolve()


def test_code_hash_changes_with_any_imported_byte_only(package):
    root, script = package
    before = code_hash(script, root)
    assert before.startswith("sha256:") and len(before) == 7 + 64
    (root / "unused.py").write_text("import pkg.c  # edited\n")
    (root / "sub" / "e.py").write_text("x = 2\n")
    assert code_hash(script, root) == before
    with open(root / "sub" / "d.py", "a") as f:
        f.write("# a comment\n")
    assert code_hash(script, root) != before
    moved = root.parent.parent / "moved"
    shutil.copytree(root.parent, moved)
    assert code_hash(moved / "scripts" / "job.py", moved / "pkg") == code_hash(script, root)



def test_the_disk_cached_hash_follows_every_edit(package, tmp_path):
    """cached_code_hash (what the workflow uses while parsing) equals code_hash
    before and after edits, also in a fresh process (simulated by dropping the
    in-memory copy), and a corrupt cache file is ignored and rewritten."""
    root, script = package
    cache = tmp_path / "cache" / "hashes.json"

    def fresh():
        provenance._DISK_CACHES.clear()
        return cached_code_hash(script, root, cache)

    first = fresh()
    assert first == code_hash(script, root) and cache.is_file()
    assert fresh() == first
    # an edit of a file in the closure that keeps its size: only the mtime tells
    d = root / "sub" / "d.py"
    text = d.read_text()
    d.write_text(text.replace("return X", "return Y"))
    os.utime(d, ns=(d.stat().st_atime_ns, d.stat().st_mtime_ns + 1_000_000))
    edited = fresh()
    assert edited == code_hash(script, root) != first
    # a new import in the closure brings in a module the entry never listed
    with open(root / "c.py", "a") as f:
        f.write("import pkg.unused\n")
    widened = fresh()
    assert widened == code_hash(script, root) != edited
    (root / "unused.py").write_text("import pkg.c  # now in the closure\n")
    assert fresh() == code_hash(script, root) != widened
    # a package data file the closure names
    reader = write(script.parent / "read.py", "import pkg.reader\n")
    before = fresh() and cached_code_hash(reader, root, cache)
    (root / "data" / "table.csv").write_text("a,b\n1,2\n3,4\n")
    provenance._DISK_CACHES.clear()
    assert cached_code_hash(reader, root, cache) == code_hash(reader, root) != before
    cache.write_text("{not json")
    assert fresh() == code_hash(script, root)
    assert json.loads(cache.read_text())

# ---- the workflow in a copy of the repository ------------------------------------------

def run_copy(repo: Path, workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    """Snakemake on the copy ``repo``'s Snakefile, importing the copy's par."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-c", SNAKEMAKE_WATCHING_IMPORTS, "--snakefile", str(repo / "Snakefile"),
           "--directory", str(workdir), f"--configfile={workdir / 'config.yaml'}", "--cores", "2", *args]
    env = {**os.environ, "PAR_OFFLINE": "1", "PYTHONPATH": str(repo)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def copied_run(full_run, tmp_path_factory):
    """A copy of the repository, and a copy of the shared tiny run (conftest ``full_run``)
    settled to this module's runs (PAR and finetune) by the copy's Snakefile: the copy's
    code hashes equal the repository's, so only the tables, which list the runs, re-run.
    (copy, workdir, config, output of the settling run)."""
    base = tmp_path_factory.mktemp("code_invalidation")
    repo = base / "repo"
    repo.mkdir()
    for name in ("Snakefile", "requirements.lock"):
        shutil.copy2(REPO / name, repo / name)
    for name in ("workflow", "par", "config"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    workdir = fork(full_run, base)
    config = config_for(Path(full_run[1]["data_root"]))
    config["runs"] = {r: {"method": r} for r in RUNS}
    result = run_copy(repo, workdir, config, "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    assert scheduled_jobs(result.stdout + result.stderr) == TAIL, "the copy re-ran more than the tables"
    return repo, workdir, config, result.stdout + result.stderr


def dry_run_after_editing(copied_run, module: str) -> set[tuple]:
    """Jobs a dry-run schedules after a comment line is appended to ``module``
    of the copy (restored afterwards)."""
    repo, workdir, config, _ = copied_run
    path = repo / module
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        result = run_copy(repo, workdir, config, "all_tables", "--dry-run")
    finally:
        path.write_bytes(original)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "HEAVY MODULES: []" in result.stdout, "parsing the workflow imported torch"
    return scheduled_jobs(result.stdout)


TAIL = {("tables", None, None), ("all_tables", None, None)}
LEARN_ALL = {("learn_task", r, t) for r in RUNS for t in TASKS} | {("metrics", r, None) for r in RUNS}


def test_unchanged_code_reruns_nothing_and_parsing_imports_no_torch(copied_run):
    repo, workdir, config, _ = copied_run
    result = run_copy(repo, workdir, config, "all_tables", "--dry-run")
    assert result.returncode == 0, result.stderr[-4000:]
    assert scheduled_jobs(result.stdout) == set()
    assert "HEAVY MODULES: []" in result.stdout


@pytest.mark.parametrize("module, expected", [
    # only the tables script imports par.results.tables (and its data file)
    ("par/results/tables.py", TAIL),
    ("par/data/paper_results.csv", TAIL),
    # strategies: every learn job of every run, never features, plan or search
    ("par/learners/strategies.py", LEARN_ALL | TAIL),
    # the extractor module: features, prototypes and distances (they read features with it),
    # then the plan checkpoint; PAR's learn jobs wait for the new plan (they re-run only
    # where it changes), finetune's do not depend on relatedness at all
    ("par/relatedness/extractor.py", {("extract_features", None, t) for t in TASKS}
     | {("prototypes", None, t) for t in TASKS}
     | {("distances", None, None), ("plan", "par", None), ("metrics", "par", None)}
     | TAIL),
    # training: every learn job and PAR's one cell search (par.search.mdl imports the loop), never
    # features, prototypes, distances or the plan
    ("par/training.py", LEARN_ALL | {("search_cell", "par", 1)} | TAIL),
    # a new lock file is recorded in the provenance, never a param: it re-runs nothing
    ("requirements.lock", set()),
])
def test_library_change_reruns_exactly_the_jobs_that_execute_it(copied_run, module, expected):
    assert dry_run_after_editing(copied_run, module) == expected


@pytest.fixture(scope="module")
def copied_all_runs(full_run, tmp_path_factory):
    """A copy of the repository and of the shared tiny run with every method of
    ``test_workflow.TINY`` (its config unchanged: the settling run runs nothing)."""
    base = tmp_path_factory.mktemp("method_invalidation")
    repo = base / "repo"
    repo.mkdir()
    shutil.copy2(REPO / "Snakefile", repo / "Snakefile")
    for name in ("workflow", "par", "config"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    workdir = fork(full_run, base)
    config = full_run[1]
    result = run_copy(repo, workdir, config, "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    assert scheduled_jobs(result.stdout + result.stderr) == set()
    return repo, workdir, config, result.stdout + result.stderr


def test_a_methods_module_reruns_only_its_own_jobs(copied_all_runs):
    """par/learners/memory.py holds ER and A-GEM only: their learn jobs, their metrics
    and the tables re-run, no job of the eight other runs."""
    assert dry_run_after_editing(copied_all_runs, "par/learners/memory.py") == (
        {("learn_task", r, t) for r in ("er", "agem") for t in TASKS} | {("metrics", r, None) for r in ("er", "agem")}
        | TAIL)


def test_adding_a_builtin_method_reruns_nothing(copied_all_runs):
    """A new built-in method (its module and one line of par/learners/discovery.py) changes
    no existing job's code: nothing re-runs, not even the plan or the cell searches."""
    repo, workdir, config, _ = copied_all_runs
    catalog = repo / "par" / "learners" / "discovery.py"
    original = catalog.read_text()
    module = repo / "par" / "learners" / "l2_anchor.py"
    try:
        shutil.copy(REPO / "tests" / "plugins" / "l2_anchor.py", module)
        catalog.write_text(original.replace('    "par.learners.growing",', '    "par.learners.growing",\n    "par.learners.l2_anchor",'))
        assert "par.learners.l2_anchor" in catalog.read_text()
        result = run_copy(repo, workdir, config, "all_tables", "--dry-run")
        with_run = run_copy(repo, workdir, {**config, "runs": {**config["runs"], "l2": {"method": "l2-anchor"}}},
                            "all_tables", "--dry-run")
    finally:
        catalog.write_text(original)
        module.unlink(missing_ok=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert scheduled_jobs(result.stdout) == set()
    assert with_run.returncode == 0, with_run.stderr[-4000:]
    assert scheduled_jobs(with_run.stdout) == (
        {("learn_task", "l2", t) for t in TASKS} | {("metrics", "l2", None)} | TAIL)


def test_extractor_change_reruns_no_learning_where_the_plan_holds(copied_run, tmp_path):
    """Past the checkpoint: the re-computed features (same weights) give the same plan, so no
    PAR task re-learns; only the tail that reads the plan and the features' outputs re-runs."""
    repo, workdir, config, _ = copied_run
    fork_repo, fork_work = tmp_path / "repo", tmp_path / "work"
    shutil.copytree(repo, fork_repo)
    shutil.copytree(workdir, fork_work, symlinks=True)
    plan_path = fork_work / "results/runs/cifar10-5/seed0/par/plan.json"
    plan_before = json.loads(plan_path.read_text())["tasks"]
    with open(fork_repo / "par" / "relatedness" / "extractor.py", "a") as f:
        f.write("\n# an edit\n")
    result = run_copy(fork_repo, fork_work, config, "all_tables")
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(plan_path.read_text())["tasks"] == plan_before
    assert scheduled_jobs(result.stdout + result.stderr) == (
        {("extract_features", None, t) for t in TASKS} | {("prototypes", None, t) for t in TASKS}
        | {("distances", None, None), ("plan", "par", None), ("metrics", "par", None)}
        | TAIL)


# ---- provenance in every output -----------------------------------------------------------

def expected_versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "snakemake": snakemake_package.__version__}


def test_every_output_records_its_provenance(copied_run):
    repo, workdir, config, _ = copied_run
    res = workdir / "results"
    script_hash = {name: code_hash(repo / "workflow" / "scripts" / f"{name}.py", repo / "par")
                   for name in ("prepare_stream", "extract_features", "prototypes", "distances", "plan",
                                "search_cell", "learn_task", "metrics", "tables")}
    assert len(set(script_hash.values())) == len(script_hash)
    # a learn job's code: its script's closure plus its own method's and strategy's modules
    found = discover(entry_points=False)
    learn_hash = {(method, strategy): code_hash(repo / "workflow" / "scripts" / "learn_task.py", repo / "par",
                                                extra=[repo / f.relative_to(REPO)
                                                       for f in found.code_sources(method, strategy)])
                  for method, strategy in (("par", "regularize"), ("finetune", "finetune"))}
    # PAR's regularize lives in distillation.py, finetune's strategy in strategies.py
    assert len({learn_hash["par", "regularize"], learn_hash["finetune", "finetune"], script_hash["learn_task"]}) == 3
    par_run, seed = res / "runs/cifar10-5/seed0/par", res / "runs/cifar10-5/seed0"
    relatedness = {"clamp_per_class": True, "epsilon": 1e-8}  # schema defaults
    outputs = {
        # file: (script, device, extractor weights, config or None (checked elsewhere))
        res / "data/cifar10-5/seed0/task1.json": ("prepare_stream", "cpu", None, None),
        res / "features/cifar10-5/seed0/task3.h5":
            ("extract_features", "cpu (1 threads)", WEIGHTS, {"weights": "random", "weights_seed": 0, "split": "val"}),
        res / "features/cifar10-5/seed0/prototypes/task3.h5": ("prototypes", "cpu", WEIGHTS, {}),
        res / "relatedness/cifar10-5/seed0/distances.parquet": ("distances", "cpu", WEIGHTS, None),
        par_run / "plan.json": ("plan", "cpu", WEIGHTS, None),
        par_run / "cells/task1.json": ("search_cell", "cpu (1 threads)", None, None),
        par_run / "states/task2.json": (("par", "regularize"), "cpu (1 threads)", None, None),
        seed / "finetune/states/task5.json": (("finetune", "finetune"), "cpu (1 threads)", None, None),
        par_run / "metrics.parquet": ("metrics", "cpu", WEIGHTS, {"method": "par"}),
        par_run / "accuracy_matrix.parquet": ("metrics", "cpu", WEIGHTS, {"method": "par"}),
        seed / "finetune/tasks.parquet": ("metrics", "cpu", "unused", {"method": "finetune"}),
        res / "tables/summary.parquet": ("tables", "cpu", None, None),
        res / "tables/aggregate.parquet": ("tables", "cpu", None, None),
    }
    for path, (script, device, weights, job_config) in outputs.items():
        record = read_provenance(path)
        assert set(record) - {"upstream"} == set(schemas.PROVENANCE) - {"upstream"}, path
        assert record["code_hash"] == (learn_hash[script] if isinstance(script, tuple) else script_hash[script]), path
        assert record["versions"] == expected_versions(), path
        assert record["device"] == device, path
        assert record["extractor_weights"] == weights, path
        assert record["lock"] == LOCK, path
        if job_config is not None:
            assert record["config"] == {**job_config, **({} if script != "distances" else relatedness)}, path
    assert read_provenance(res / "relatedness/cifar10-5/seed0/distances.parquet")["config"] == relatedness
    # the tables job's params: which runs, seeds and PAR plans its report figures cover
    assert read_provenance(res / "tables/summary.parquet")["config"] == {
        "n_tasks": {"cifar10-5": 5}, "plan_runs": [["cifar10-5", 0, "par"]],
        "runs": [["cifar10-5", 0, "finetune"], ["cifar10-5", 0, "par"]], "seeds": [["cifar10-5", 0]]}

    learn = read_provenance(par_run / "states/task2.json")
    assignment = learn["config"]["assignment"]
    assert (assignment["task"], assignment["strategy"], assignment["predecessor"]) == (2, "regularize", 1)
    assert learn["config"]["training"]["epochs"] == 1 and learn["config"]["strategy"]["options"]["lambda"] == 1.0
    assert learn["upstream"]["code_hash"] == [script_hash["prepare_stream"]]
    first = read_provenance(par_run / "states/task1.json")  # reads the searched cell
    assert first["upstream"]["code_hash"] == sorted({script_hash["prepare_stream"], script_hash["search_cell"]})
    assert read_provenance(par_run / "plan.json")["config"]["planning"]["alpha"] == 1.0

    # the tables carry everything they combine
    upstream = read_provenance(res / "tables/summary.parquet")["upstream"]
    assert upstream["code_hash"] == sorted({*learn_hash.values(),
                                            *(h for name, h in script_hash.items() if name not in ("tables", "learn_task"))})
    assert upstream["extractor_weights"] == sorted({WEIGHTS, "unused"})
    assert upstream["device"] == ["cpu", "cpu (1 threads)"]
    assert upstream["versions"] == [expected_versions()]
    assert upstream["lock"] == [LOCK]
