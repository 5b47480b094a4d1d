"""Accuracy matrix and metrics per run; tables beside the paper's numbers."""


rule metrics:
    """r[t][u], AP, AF, M and T of one run (docs/spec.md §6)."""
    input:
        unpack(get_run_outputs),
    output:
        metrics=results("runs/{bench}/seed{seed}/{run}/metrics.parquet"),
        accuracy=results("runs/{bench}/seed{seed}/{run}/accuracy_matrix.parquet"),
        tasks=results("runs/{bench}/seed{seed}/{run}/tasks.parquet"),
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
    """Summary per seed, mean ± std beside the paper, Markdown renderings, a figure."""
    input:
        METRICS,
    output:
        summary=results("tables/summary.parquet"),
        summary_md=results("tables/summary.md"),
        aggregate=results("tables/aggregate.parquet"),
        aggregate_md=results("tables/aggregate.md"),
        figure=report(results("tables/ap_vs_parameters.png"), category="Summary",
                      caption="../report/ap_vs_parameters.rst"),
    params:
        code=code_version("tables.py"),
    log:
        results("logs/tables.log"),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/par.yaml"
    script:
        "../scripts/tables.py"
