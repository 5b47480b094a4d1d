"""Rule tables: summary per seed and mean ± std beside the paper's numbers, and
the report's figures and pages of every run (distances, plans, accuracy matrices)."""
from pathlib import Path

from par.infra import schemas
from par.infra.io import atomic_path, read_json, read_parquet, write_parquet
from par.infra.logs import job_log
from par.relatedness.distances import load_distances
from par.results.plots import accuracy_heatmap, ap_vs_parameters, distance_heatmap, task_label
from par.infra.provenance import provenance, provenance_json, read_provenance
from par.results.tables import (aggregate_html, aggregate_markdown, aggregate_table, plan_html, summary_html,
                        summary_markdown, summary_table)

with job_log(snakemake.log[0]) as log:
    summary = summary_table([read_parquet(p) for p in snakemake.input.metrics])
    aggregate = aggregate_table(summary)
    # the tables combine runs: their provenance lists every code hash, extractor
    # weights, device and package versions that went into them (key upstream)
    metadata = {"provenance": provenance_json(provenance(snakemake.params, "cpu",
                                                         upstream=[read_provenance(p) for p in snakemake.input.metrics]))}
    write_parquet(snakemake.output.summary, summary, schemas.SUMMARY, metadata)
    write_parquet(snakemake.output.aggregate, aggregate, schemas.AGGREGATE, metadata)
    pages = [(snakemake.output.summary_md, summary_markdown(summary)),
             (snakemake.output.aggregate_md, aggregate_markdown(aggregate)),
             (snakemake.output.summary_html, summary_html(summary)),
             (snakemake.output.aggregate_html, aggregate_html(aggregate))]
    ap_vs_parameters(summary, snakemake.output.figure)

    p = snakemake.params
    # task labels "<dataset>: <classes>" of every (bench, seed), in the order of input.tasks
    task_files = iter(snakemake.input.tasks)
    labels = {}
    for bench, seed in p.seeds:
        tasks = [read_json(next(task_files)) for _ in range(p.n_tasks[bench])]
        labels[bench, seed] = {t["task"]: task_label(t, t.get("dataset", ""), max_names=3) for t in tasks}
    for (bench, seed), table, figure in zip(p.seeds, snakemake.input.distances, snakemake.output.distance_figures):
        matrix = load_distances(table, p.n_tasks[bench])
        distance_heatmap(matrix, figure, f"{bench}, seed {seed}: task distances KL(q_i ‖ q_j), Eq. 4",
                         [labels[bench, seed][t] for t in range(1, p.n_tasks[bench] + 1)])
    for (bench, seed, run), path, page in zip(p.plan_runs, snakemake.input.plans, snakemake.output.plan_tables):
        pages.append((page, plan_html(read_json(path), labels[bench, seed])))
    for (bench, seed, run), path, figure in zip(p.runs, snakemake.input.accuracy, snakemake.output.accuracy_figures):
        n = p.n_tasks[bench]
        accuracy_heatmap(read_parquet(path), figure, f"{run} on {bench}, seed {seed}: test accuracy r[t][u]",
                         [labels[bench, seed][t] for t in range(1, n + 1)])
    for path, text in pages:
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
    log.info("\n%s", aggregate_markdown(aggregate))
