"""The paper's tables and figures as targets (table1..table5, fig3..fig6, ablation, paper).

Every table compares with par/data/paper_results.csv (the targets file); a cell
whose run or benchmark is not configured reads "not run", a method the project
does not implement "not reproduced".  Only configured benchmarks are run.
Lookups are in common_paper.smk.
"""


rule paper_table:
    """One of the paper's Tables 1-5 beside our runs, a verdict per cell."""
    input:
        metrics=get_paper_table_metrics,
    output:
        table=results("tables/table{number}.parquet"),
        markdown=results("tables/table{number}.md"),
        html=report(
            results("tables/table{number}.html"),
            category="Paper tables",
            caption="../report/paper_table.rst",
            labels={"table": "Table {number}"},
        ),
    params:
        code=code_version("paper_table.py"),
        aliases=RUN_ALIASES,
        measured_on=get_measured_on,
        title=lambda w: TABLE_TITLES[int(w.number)],
    wildcard_constraints:
        number="[1-5]",
    localrule: True
    log:
        results("logs/paper_table/table{number}.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/paper_table.py"


rule sweep_figure:
    """AP, M, experts and T against alpha (Fig. 3, beta fixed) or beta (Fig. 4, alpha fixed)."""
    input:
        metrics=lambda w: _metrics([ABLATION_BENCHMARK], SWEEPS[w.number][1]),
    output:
        figure=report(
            results("figures/fig{number}.png"),
            category="Paper figures",
            caption="../report/sweep_figure.rst",
            labels={"figure": "Fig. {number}"},
        ),
    params:
        code=code_version("sweep_figure.py"),
        parameter=lambda w: SWEEPS[w.number][0],
        values=lambda w: SWEEPS[w.number][1],
        aliases=RUN_ALIASES,
        benchmark=ABLATION_BENCHMARK,
        title=lambda w: (
            f"Fig. 3: alpha sweep (beta = {PAPER_TARGETS['sweep_beta']:g})"
            if w.number == "3"
            else f"Fig. 4: beta sweep (alpha = {PAPER_TARGETS['sweep_alpha']:g})"
        ),
    wildcard_constraints:
        number="[34]",
    localrule: True
    log:
        results("logs/sweep_figure/fig{number}.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/sweep_figure.py"


rule task_groups_figure:
    """Task groups and experts of one PAR run, tasks named by their classes (Fig. 5)."""
    input:
        unpack(get_grouping_inputs),
    output:
        figure=report(
            results("figures/fig5.png"),
            category="Paper figures",
            caption="../report/task_groups_figure.rst",
            labels={"figure": "Fig. 5"},
        ),
    params:
        code=code_version("task_groups_figure.py"),
        benchmark=PAPER_TARGETS["grouping_benchmark"],
        run=PAPER_TARGETS["grouping_run"],
        title="Fig. 5: task groups and experts",
    localrule: True
    log:
        results("logs/task_groups_figure.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/task_groups_figure.py"


rule distance_figure:
    """Task-distance heatmaps of several streams, tasks labelled by dataset and classes (Fig. 6)."""
    input:
        distances=[results_path("distances", bench=b, seed=SEEDS[0]) for b in distance_benchmarks()],
        tasks=[task_path(b, SEEDS[0], t) for b in distance_benchmarks() for t in range(1, n_tasks(b) + 1)],
    output:
        figure=report(
            results("figures/fig6.png"),
            category="Paper figures",
            caption="../report/distance_figure.rst",
            labels={"figure": "Fig. 6"},
        ),
    params:
        code=code_version("distance_figure.py"),
        benchmarks=PAPER_TARGETS["distance_benchmarks"],
        shown=[(b, SEEDS[0], n_tasks(b)) for b in distance_benchmarks()],
        title="Fig. 6: task distances KL(q_i || q_j)",
    localrule: True
    log:
        results("logs/distance_figure.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/distance_figure.py"


rule switch_ablation:
    """Every paper-vs-code switch (docs/spec.md), one run each, everything else as the par run."""
    input:
        metrics=_metrics([ABLATION_BENCHMARK], ["par"] + [s.run for s in selected_switches(PAPER_TARGETS["switches"])]),
    output:
        table=results("tables/ablation_switches.parquet"),
        markdown=results("tables/ablation_switches.md"),
        html=report(
            results("tables/ablation_switches.html"),
            category="Ablations",
            caption="../report/switch_ablation.rst",
            labels={"table": "paper-vs-code switches"},
        ),
    params:
        code=code_version("switch_ablation.py"),
        switches=PAPER_TARGETS["switches"],
        unavailable=switch_runs_unavailable(),
        aliases=RUN_ALIASES,
        benchmark=ABLATION_BENCHMARK,
        reference_run="par",
    localrule: True
    log:
        results("logs/switch_ablation.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/switch_ablation.py"


for _target, _files in PAPER_OUTPUTS.items():

    rule:
        name:
            _target
        input:
            _files,
        localrule: True


rule paper:
    """Every table and figure of the paper (Tables 1-5, Fig. 3-6) and the switch ablation
    that the configured benchmarks and runs fill; the others are named in the report."""
    localrule: True
    input:
        [f for target, files in PAPER_OUTPUTS.items() if target not in PAPER_LEFT_OUT for f in files],
        TABLES,
