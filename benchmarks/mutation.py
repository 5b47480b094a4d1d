"""Mutation testing of the method's core modules with mutmut (issue 13; not in CI: slow).

    pip install mutmut          # a script-only tool: in no dependency list
    python benchmarks/mutation.py                     # every module below
    python benchmarks/mutation.py relatedness metrics # some of them
    python benchmarks/mutation.py --list              # the modules and their tests

Each module is mutated on its own, in a scratch copy of ``par/`` and ``tests/``,
and each mutant is run against only the module's related test files (mutmut 3
then runs, per mutant, only those of them that call the mutated function).
Per module it prints killed / survived / no tests / timeouts and the kill rate,
writes ``benchmarks/mutation/<module>.json`` (summary and surviving mutants) and
``benchmarks/mutation/<module>.diff`` (each survivor's original and mutated line, to
judge which are equivalent).  The real CIFAR-10 slice of the tests is read from
``PAR_SHARED_DATA`` (default ``../shared/data``).
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
OUT = REPO / "benchmarks" / "mutation"

# module -> its related test files
MODULES: dict[str, tuple[str, list[str]]] = {
    "relatedness": ("par/relatedness.py", ["tests/test_relatedness.py"]),
    "planning": ("par/planning.py", ["tests/test_planning.py"]),
    "metrics": ("par/metrics.py", ["tests/test_metrics.py"]),
    "mdl": ("par/mdl.py", ["tests/test_mdl.py"]),
    "training": ("par/training.py", ["tests/test_training.py"]),
    "strategies": ("par/learners/strategies.py", ["tests/test_training.py", "tests/test_learners.py",
                                                  "tests/test_baselines.py"]),
    "regularizers": ("par/learners/regularizers.py", ["tests/test_baselines.py"]),
    "methods": ("par/learners/methods.py", ["tests/test_learners.py"]),
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
            functions[node.name] = lines[node.lineno:node.end_lineno]   # the body, without the def line
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


def run_module(name: str, max_children: int) -> dict:
    """Mutate one module in a scratch copy; returns the summary dict."""
    module, tests = MODULES[name]
    with tempfile.TemporaryDirectory(prefix=f"mutmut-{name}-") as tmp:
        work = Path(tmp)
        shutil.copytree(REPO / "par", work / "par", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "workflow" / "schemas", work / "workflow" / "schemas")   # the defaults
        (work / "pyproject.toml").write_text(
            (REPO / "pyproject.toml").read_text()
            + "\n[tool.mutmut]\n"
            + 'source_paths = ["par"]\n'
            + f"only_mutate = {json.dumps([module])}\n"
            + f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
            + 'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider"]\n'
            + 'also_copy = ["workflow/schemas"]\n')
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
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (OUT / f"{name}.diff").write_text("\n".join(diffs) + "\n")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--list", action="store_true", help="list the modules and their tests")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    args = parser.parse_args(argv)
    if args.list:
        for name, (module, tests) in MODULES.items():
            print(f"{name:13s} {module:32s} {' '.join(tests)}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    for name in args.modules or list(MODULES):
        s = run_module(name, args.max_children)
        rate = "n/a" if s["kill_rate"] is None else f"{100 * s['kill_rate']:.1f} %"
        print(f"{name}: {s['killed']} killed, {s['survived']} survived, {s['no_tests']} without tests, "
              f"{s['timeout']} timeouts of {s['total']}: kill rate {rate} ({s['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
