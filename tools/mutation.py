"""Mutation testing of the method's core modules with mutmut (not in CI: slow).

    pip install mutmut          # a script-only tool: in no dependency list
    python tools/mutation.py                     # every module below
    python tools/mutation.py relatedness metrics # some of them
    python tools/mutation.py --list              # the modules and their tests

Each module is mutated on its own, in a scratch copy of ``par/`` and ``tests/``,
and each mutant is run against only the module's related test files (mutmut 3
then runs, per mutant, only those of them that call the mutated function).
Per module it prints killed / survived / no tests / timeouts and the kill rate,
writes ``tools/mutation/<module>.json`` (summary and surviving mutants) and
``tools/mutation/<module>.diff`` (each survivor as ``name: original => mutated``,
the changed lines of its function, the ``def`` line included, to judge which are
equivalent).  The real CIFAR-10 slice of the tests is read from ``PAR_SHARED_DATA``
(default ``../shared/data``).

Survivors judged equivalent (no test can tell them from the original) are listed by
hand in ``tools/mutation/<module>.equivalent.tsv``: a header line, then
``function<TAB>change<TAB>reason``, where ``function`` is the mutant name without its
``__mutmut_N`` (mutant numbers shift when the code changes) and ``change`` is exactly
the ``original => mutated`` text the .diff shows after ``name: ``.  Survivors that
match a row count as equivalent; the JSON and the printout then also give the kill
rate over the non-equivalent mutants, (killed + timeouts) / (decided − equivalent),
and the unexplained survivors.

    python tools/mutation.py --rescore training  # after editing a .tsv: recompute
                                                      # the JSON from JSON + .diff + .tsv
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tools" / "mutation"

# module -> its related test files
MODULES: dict[str, tuple[str, list[str]]] = {
    "relatedness": ("par/relatedness/distances.py", ["tests/test_relatedness.py"]),
    "planning": ("par/planning.py", ["tests/test_planning.py"]),
    "metrics": ("par/results/metrics.py", ["tests/test_metrics.py"]),
    "mdl": ("par/search/mdl.py", ["tests/test_mdl.py"]),
    "training": ("par/training.py", ["tests/test_training.py"]),
    "strategies": ("par/learners/strategies.py", ["tests/test_training.py", "tests/test_learners.py",
                                                  "tests/test_baselines.py"]),
    "distillation": ("par/learners/distillation.py", ["tests/test_training.py", "tests/test_learners.py",
                                                      "tests/test_baselines.py"]),
    "penalties": ("par/learners/penalties.py", ["tests/test_baselines.py"]),
    "regularizers": ("par/learners/regularizers.py", ["tests/test_baselines.py"]),
    "methods": ("par/learners/methods.py", ["tests/test_learners.py"]),
    "memory": ("par/learners/memory.py", ["tests/test_memory_methods.py"]),
    "hat": ("par/learners/hat.py", ["tests/test_hat.py"]),
    "growing": ("par/learners/growing.py", ["tests/test_growing.py"]),
    "ltg": ("par/learners/ltg.py", ["tests/test_growing.py"]),
    "mntdp": ("par/learners/mntdp.py", ["tests/test_growing.py"]),
    "job": ("par/learners/job.py", ["tests/test_learners.py", "tests/test_memory_methods.py"]),
    "si": ("par/learners/si.py", ["tests/test_si.py"]),
    "runs": ("par/runs.py", ["tests/test_runs.py"]),
    "specs": ("par/nets/specs.py", ["tests/test_runs.py"]),
}


def _mutmut() -> str:
    exe = shutil.which("mutmut") or str(Path(sys.executable).with_name("mutmut"))
    if not Path(exe).exists():
        raise SystemExit("mutmut is not installed: pip install mutmut")
    return exe


def survivor_diffs(mutated_source: Path, survivors: list[str]) -> list[str]:
    """``name: original line => mutated line`` of each survivor, from mutmut's mutated
    copy of the module (each mutant is a copy of its function, ``x_<f>__mutmut_<n>``)."""
    import ast
    import difflib
    import re

    lines = mutated_source.read_text().splitlines()
    functions = {}
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # the def line too (a mutated default value changes only the signature), under
            # the function's own name, so that the original's and the mutant's compare equal
            public = re.sub(r"^x(_|ǁ[^ǁ]*ǁ)", "", re.sub(r"__mutmut_(\d+|orig)$", "", node.name))
            body = lines[node.lineno - 1:node.end_lineno]
            functions[node.name] = [body[0].replace(node.name, public, 1)] + body[1:]
    out = []
    for name in survivors:
        mutant = name.split(".")[-1]
        original = re.sub(r"__mutmut_\d+$", "__mutmut_orig", mutant)
        if mutant not in functions or original not in functions:
            out.append(f"{name}: (not found)")
            continue
        lines = [l for l in difflib.unified_diff(functions[original], functions[mutant], lineterm="", n=0)
                 if l[:1] in "+-" and not l.startswith(("+++", "---"))]
        out.append(f"{name}: " + " => ".join(l[1:].strip() for l in lines))
    return out


def function_of(mutant: str) -> str:
    """``par.training.x_fit__mutmut_12`` -> ``par.training.x_fit`` (the .equivalent.tsv key)."""
    import re

    return re.sub(r"__mutmut_\d+$", "", mutant)


def read_equivalent(name: str) -> dict[tuple[str, str], str]:
    """(function, change) -> reason, from ``<name>.equivalent.tsv`` (empty if there is none)."""
    path = OUT / f"{name}.equivalent.tsv"
    if not path.exists():
        return {}
    rows = {}
    for number, line in enumerate(path.read_text().splitlines()[1:], start=2):   # [0]: the header
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(f.strip() for f in (fields[0], fields[2])):
            raise SystemExit(f"{path}:{number}: want function<TAB>change<TAB>reason, got {line!r}")
        rows[(fields[0], fields[1])] = fields[2]
    return rows


def changes(diffs: list[str]) -> dict[str, str]:
    """mutant -> its ``original => mutated`` text, from the ``name: change`` lines of a .diff."""
    return {mutant: text for mutant, _, text in (line.partition(": ") for line in diffs)}


def score(name: str, summary: dict, diffs: list[str]) -> dict:
    """``summary`` with the equivalent survivors (those matching ``<name>.equivalent.tsv``) counted,
    the kill rate over the non-equivalent mutants and the unexplained survivors added."""
    change = changes(diffs)
    rows = read_equivalent(name)
    equivalent = {m for m in summary["survivors"] if (function_of(m), change.get(m)) in rows}
    used = {(function_of(m), change[m]) for m in equivalent}
    decided = summary["killed"] + summary["survived"] + summary["timeout"]
    caught = summary["killed"] + summary["timeout"]
    rest = decided - len(equivalent)
    return {**summary, "equivalent": len(equivalent),
            "kill_rate_non_equivalent": round(caught / rest, 4) if rest else None,
            "unexplained": [m for m in summary["survivors"] if m not in equivalent],
            "unmatched_equivalent_rows": len(set(rows) - used)}


def write(name: str, summary: dict, diffs: list[str]) -> dict:
    summary = score(name, summary, diffs)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (OUT / f"{name}.diff").write_text("\n".join(diffs) + "\n")
    return summary


def rescore(name: str) -> dict:
    """Recompute ``<name>.json`` from the stored JSON, .diff and .equivalent.tsv (no mutmut run)."""
    path = OUT / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"{name}: no {path} yet: run the module first")
    summary = json.loads(path.read_text())
    diffs = (OUT / f"{name}.diff").read_text().splitlines()
    return write(name, summary, [d for d in diffs if d.strip()])


def report(name: str, s: dict) -> None:
    rate = "n/a" if s["kill_rate"] is None else f"{100 * s['kill_rate']:.1f} %"
    rate_ne = "n/a" if s["kill_rate_non_equivalent"] is None else f"{100 * s['kill_rate_non_equivalent']:.1f} %"
    print(f"{name}: {s['killed']} killed, {s['survived']} survived ({s['equivalent']} equivalent), "
          f"{s['no_tests']} without tests, {s['timeout']} timeouts of {s['total']}: kill rate {rate}, "
          f"{rate_ne} of the non-equivalent ({s['seconds']} s)", flush=True)
    if s["unmatched_equivalent_rows"]:
        print(f"  {s['unmatched_equivalent_rows']} row(s) of {name}.equivalent.tsv match no survivor "
              f"(killed now, or the code changed)")
    if s["unexplained"]:
        change = changes((OUT / f"{name}.diff").read_text().splitlines())
        print(f"  {len(s['unexplained'])} unexplained survivor(s):")
        for m in s["unexplained"]:
            print(f"    {m}: {change.get(m, '')}")


def run_module(name: str, max_children: int) -> dict:
    """Mutate one module in a scratch copy; returns the summary dict."""
    module, tests = MODULES[name]
    with tempfile.TemporaryDirectory(prefix=f"mutmut-{name}-") as tmp:
        work = Path(tmp)
        shutil.copytree(REPO / "par", work / "par", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        (work / "pyproject.toml").write_text(
            (REPO / "pyproject.toml").read_text()
            + "\n[tool.mutmut]\n"
            + 'source_paths = ["par"]\n'
            + f"only_mutate = {json.dumps([module])}\n"
            + f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
            + 'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider"]\n')
        env = {**os.environ, "PAR_SHARED_DATA": os.environ.get("PAR_SHARED_DATA", str(REPO.parent / "shared" / "data"))}
        env.pop("PYTHONPATH", None)   # par must come from mutmut's copy
        # the real-image slice is extracted once (by mutmut's first, unmutated run), not once per mutant
        env["PAR_TEST_SLICE_CACHE"] = str(work / "cifar10-slice")
        # mutmut forks each mutant from a process that has run torch: a forked child of a
        # multi-threaded intra-op pool can hang (every mutant then "times out"); one thread
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        start = time.perf_counter()
        run = subprocess.run([_mutmut(), "run", "--max-children", str(max_children)], cwd=work, env=env,
                             capture_output=True, text=True)
        seconds = time.perf_counter() - start
        subprocess.run([_mutmut(), "export-cicd-stats"], cwd=work, env=env, capture_output=True, text=True)
        stats_path = work / "mutants" / "mutmut-cicd-stats.json"
        if not stats_path.exists() or not json.loads(stats_path.read_text())["killed"]:
            raise SystemExit(f"{name}: mutmut gave no results:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        stats = json.loads(stats_path.read_text())
        results = subprocess.run([_mutmut(), "results"], cwd=work, env=env, capture_output=True, text=True).stdout
        survivors = [line.split(":")[0].strip() for line in results.splitlines() if line.strip().endswith("survived")]
        diffs = survivor_diffs(work / "mutants" / module, survivors)
    decided = stats["killed"] + stats["survived"] + stats["timeout"]
    summary = {"module": module, "tests": tests, **stats, "seconds": round(seconds),
               "kill_rate": round((stats["killed"] + stats["timeout"]) / decided, 4) if decided else None,
               "survivors": survivors}
    return write(name, summary, diffs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--list", action="store_true", help="list the modules and their tests")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--rescore", action="store_true",
                        help="recompute the JSON from the stored JSON, .diff and .equivalent.tsv, without mutmut")
    args = parser.parse_args(argv)
    if args.list:
        for name, (module, tests) in MODULES.items():
            print(f"{name:13s} {module:32s} {' '.join(tests)}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    names = args.modules or list(MODULES)
    if args.rescore:   # the modules that have results
        names = [n for n in names if args.modules or (OUT / f"{n}.json").exists()]
    for name in names:
        report(name, rescore(name) if args.rescore else run_module(name, args.max_children))
    return 0


if __name__ == "__main__":
    sys.exit(main())
