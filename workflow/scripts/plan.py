"""Checkpoint plan: task groups and a strategy per task (docs/spec.md §3)."""
from par.infra.io import parquet_metadata, read_json, write_json
from par.infra.logs import job_log
from par.planning import PlanSettings, plan_tasks
from par.infra.provenance import provenance, read_provenance
from par.relatedness.distances import load_distances

with job_log(snakemake.log[0]) as log:
    tasks = sorted((read_json(p) for p in snakemake.input.tasks), key=lambda t: t["task"])
    distances = load_distances(snakemake.input.distances, len(tasks))
    # The seed of the stream also seeds the sampled coarse-level search (coarse_search: sample).
    settings = PlanSettings.from_config(snakemake.params.planning, snakemake.params.zero_is_far)
    decisions = plan_tasks(distances, [t["n_train"] for t in tasks], settings, seed=int(snakemake.wildcards.seed))
    groups = {}
    for d in decisions:
        groups.setdefault(d.group, []).append(d.task)
        log.info("task %d -> group %d, %s (%s)", d.task, d.group, d.strategy, d.reason)
    weights = parquet_metadata(snakemake.input.distances).get("extractor_weights", "unknown")
    write_json(snakemake.output.plan, {
        "benchmark": snakemake.wildcards.bench, "seed": int(snakemake.wildcards.seed), "run": snakemake.wildcards.run,
        "extractor_weights": weights,
        "provenance": provenance(snakemake.params, "cpu", extractor_weights=weights,
                                 upstream=[read_provenance(snakemake.input.distances),
                                           *map(read_provenance, snakemake.input.tasks)]),
        "planning": {**snakemake.params.planning, "zero_is_far": snakemake.params.zero_is_far},
        "groups": {str(g): tasks for g, tasks in groups.items()},
        "tasks": [d.to_json() for d in decisions],
    })
