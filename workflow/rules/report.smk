"""Accuracy matrix and metrics per run; the tables of every run."""


rule metrics:
    """r[t][u], AP, AF, M and T of one run (docs/spec.md §6)."""
    localrule: True
    input:
        unpack(get_run_outputs),
    output:
        metrics=results_path("metrics"),
        accuracy=results_path("accuracy_matrix"),
        tasks=results_path("run_tasks"),
    params:
        code=code_version("metrics.py"),
        method=lambda w: RUNS[w.run]["method"],
    log:
        results("logs/metrics/{bench}/seed{seed}/{run}.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/metrics.py"


rule tables:
    """Summary per seed, mean ± std beside the paper, their Markdown and HTML
    renderings, and what the report shows of each run: AP against M, a labelled
    distance heatmap per benchmark and seed, the accuracy matrix of every run and
    the plan of every PAR run (``snakemake all_tables --report report.html``)."""
    localrule: True
    input:
        metrics=METRICS,
        accuracy=[results_path("accuracy_matrix", bench=b, seed=s, run=r) for b, s, r in REPORT_RUNS],
        plans=[results_path("plan", bench=b, seed=s, run=r) for b, s, r in REPORT_RUNS if r in PLAN_RUNS],
        distances=[results_path("distances", bench=b, seed=s) for b, s in REPORT_SEEDS],
        tasks=[task_path(b, s, t) for b, s in REPORT_SEEDS for t in range(1, n_tasks(b) + 1)],
    output:
        summary=results("tables/summary.parquet"),
        summary_md=results("tables/summary.md"),
        summary_html=report(
            results("tables/summary.html"),
            category="Summary",
            subcategory="Tables",
            caption="../report/summary_table.rst",
            labels={"table": "summary (per seed)"},
        ),
        aggregate=results("tables/aggregate.parquet"),
        aggregate_md=results("tables/aggregate.md"),
        aggregate_html=report(
            results("tables/aggregate.html"),
            category="Summary",
            subcategory="Tables",
            caption="../report/aggregate_table.rst",
            labels={"table": "aggregate (mean ± std)"},
        ),
        figure=report(
            results("tables/ap_vs_parameters.png"),
            category="Summary",
            subcategory="Figures",
            caption="../report/ap_vs_parameters.rst",
            labels={"figure": "AP vs parameters"},
        ),
        distance_figures=[
            get_report_item(
                f"figures/distances/{b}-seed{s}.png",
                "Relatedness",
                "../report/distance_heatmap.rst",
                "Task distances",
                {"benchmark": b, "seed": str(s)},
            )
            for b, s in REPORT_SEEDS
        ],
        plan_tables=[
            get_report_item(
                f"tables/plans/{b}-seed{s}-{r}.html",
                "Plans",
                "../report/plan_table.rst",
                "Groups and strategies",
                {"benchmark": b, "seed": str(s), "run": r},
            )
            for b, s, r in REPORT_RUNS
            if r in PLAN_RUNS
        ],
        accuracy_figures=[
            get_report_item(
                f"figures/accuracy/{b}-seed{s}-{r}.png",
                "Accuracy matrices",
                "../report/accuracy_matrix.rst",
                b,
                {"benchmark": b, "seed": str(s), "run": r},
            )
            for b, s, r in REPORT_RUNS
        ],
    params:
        code=code_version("tables.py"),
        seeds=REPORT_SEEDS,
        runs=REPORT_RUNS,
        plan_runs=[(b, s, r) for b, s, r in REPORT_RUNS if r in PLAN_RUNS],
        n_tasks=as_param({b: n_tasks(b) for b in BENCHMARK_NAMES}),
    log:
        results("logs/tables.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/tables.py"
