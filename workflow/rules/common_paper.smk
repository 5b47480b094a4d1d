"""Lookups of the paper targets for paper.smk: which runs, benchmarks and files each
table and figure needs (input functions named get_*, as in common.smk)."""

from par.paper.ablations import selected_switches, sweep_run, switch_status
from par.infra.io import atomic_path
from par.results.report import LANDING_MARKER, landing_rst
from par.paper.targets import TABLE_TITLES, runs_not_in_the_paper, target_rows

# The report's texts, beside the rule files (also when the workflow is used as a module).
REPORT_DIR = Path(workflow.current_basedir).parent / "report"

TARGET_ROWS = target_rows()  # list of dicts: no pandas while parsing
# Runs of methods the paper does not report (e.g. a method of one's own): extra rows of Tables 1-4.
EXTRA_RUNS = runs_not_in_the_paper({r: s["method"] for r, s in RUNS.items()}, TARGET_ROWS)
ABLATION_BENCHMARK = PAPER_TARGETS["ablation_benchmark"]
PAPER_TABLES = sorted(TABLE_TITLES)


def _actual(run):
    return RUN_ALIASES.get(run, run)


def _metrics(benchmarks, runs):
    """metrics.parquet of ``runs`` (aliases resolved) on the configured ones of ``benchmarks``."""
    return sorted(
        {
            results_path("metrics", bench=b, seed=s, run=_actual(r))
            for b in benchmarks
            if b in BENCHMARK_NAMES
            for s in SEEDS
            for r in runs
            if _actual(r) in RUNS
        }
    )


def _table_benchmarks(number):
    """Benchmarks a paper table's runs are made on (Table 5: the ablation benchmark)."""
    if number == 5:
        return [ABLATION_BENCHMARK]
    return list(dict.fromkeys(r["benchmark"] for r in TARGET_ROWS if r["table"] == number))


def get_paper_table_metrics(wildcards):
    """metrics.parquet of every configured run Table ``wildcards.number`` shows."""
    return paper_table_metrics(int(wildcards.number))


def paper_table_metrics(number):
    rows = [r for r in TARGET_ROWS if r["table"] == number]
    if number == 5:
        rows = [r for r in rows if r["method"] in PAPER_TARGETS["table5_rows"]]
    runs = {r["run"] for r in rows if r["run"]}
    if number != 5:  # Table 5 ablates PAR's own components
        runs |= set(EXTRA_RUNS)
    return _metrics(_table_benchmarks(number), runs)


def get_measured_on(wildcards):
    """Table 5's paper benchmark -> the benchmark its runs are made on."""
    return {"cifar100-10": ABLATION_BENCHMARK} if int(wildcards.number) == 5 else {}


SWEEPS = {  # figure -> (parameter, {run: value})
    "3": ("alpha", {sweep_run("alpha", v): v for v in PAPER_TARGETS["alpha_sweep"]}),
    "4": ("beta", {sweep_run("beta", v): v for v in PAPER_TARGETS["beta_sweep"]}),
}


def switch_runs_unavailable():
    """Switch run -> why it cannot run in this build (a key this build's schema lacks)."""
    return {
        s.run: why
        for s in selected_switches(PAPER_TARGETS["switches"])
        if (why := switch_status(s, config)) is not None
    }


def get_grouping_inputs(wildcards):
    """The plan and tasks Fig. 5 shows, or nothing when its run is not configured."""
    return grouping_inputs()


def grouping_inputs():
    bench, run = PAPER_TARGETS["grouping_benchmark"], PAPER_TARGETS["grouping_run"]
    if (
        bench not in BENCHMARK_NAMES
        or _actual(run) not in RUNS
        or not CATALOG.method(RUNS[_actual(run)]["method"]).needs_plan
    ):
        return {}
    return {
        "plan": results_path("plan", bench=bench, seed=SEEDS[0], run=_actual(run)),
        "tasks": [task_path(bench, SEEDS[0], t) for t in range(1, n_tasks(bench) + 1)],
    }


def distance_benchmarks():
    return [b for b in PAPER_TARGETS["distance_benchmarks"] if b in BENCHMARK_NAMES]


def _table_files(number):
    return [results(f"tables/table{number}.{ext}") for ext in ("parquet", "md", "html")]


PAPER_OUTPUTS = {
    **{f"table{n}": _table_files(n) for n in PAPER_TABLES},
    **{f"fig{n}": [results(f"figures/fig{n}.png")] for n in (3, 4, 5, 6)},
    "ablation": [results(f"tables/ablation_switches.{ext}") for ext in ("parquet", "md", "html")],
}


def paper_target_unconfigured(target):
    """Why a paper target has nothing of this configuration to show (None: it has).
    ``paper`` builds only the targets that have; each named target still builds alone."""
    if target.startswith("table"):
        number = int(target[5:])
        benchmarks = [b for b in _table_benchmarks(number) if b in BENCHMARK_NAMES]
        if not benchmarks:
            return f"none of its benchmarks ({', '.join(_table_benchmarks(number))}) is configured"
        if not paper_table_metrics(number):
            return f"none of its methods has a configured run on {', '.join(benchmarks)}"
        return None
    if target in ("fig3", "fig4", "ablation"):
        return (
            None
            if ABLATION_BENCHMARK in BENCHMARK_NAMES
            else (f"its benchmark {ABLATION_BENCHMARK} (paper_targets.ablation_benchmark) is not configured")
        )
    if target == "fig5":
        return (
            None
            if grouping_inputs()
            else (
                f"run {PAPER_TARGETS['grouping_run']} on {PAPER_TARGETS['grouping_benchmark']} "
                "(paper_targets.grouping_run, grouping_benchmark) is not configured"
            )
        )
    if target == "fig6":
        return (
            None
            if distance_benchmarks()
            else (
                f"none of {', '.join(PAPER_TARGETS['distance_benchmarks'])} (paper_targets.distance_benchmarks) is configured"
            )
        )
    return None


PAPER_LEFT_OUT = {t: why for t in PAPER_OUTPUTS if (why := paper_target_unconfigured(t)) is not None}


def report_description():
    """The report's description: workflow/report/workflow.rst, its landing blocks filled
    with this run's summary table and AP figure (par.results.report), followed by the paper
    targets this configuration leaves out of `paper` and why, written (atomically,
    when it changed) to .snakemake/par/workflow.rst, whose absolute path it returns."""
    text = (REPORT_DIR / "workflow.rst").read_text()
    text = text.replace(LANDING_MARKER, landing_rst(RESULTS))
    if PAPER_LEFT_OUT:
        text += (
            "\nPaper targets that this configuration does not fill, left out of ``snakemake paper`` "
            "and of this report:\n\n" + "".join(f"- {t}: {why}\n\n" for t, why in PAPER_LEFT_OUT.items())
        )
    path = Path(".snakemake", "par", "workflow.rst").resolve()
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return str(path)
