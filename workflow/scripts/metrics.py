"""Rule metrics: accuracy matrix, AP, AF, M, T of one run (docs/spec.md §6)."""
from par.infra import schemas
from par.infra.io import read_json, write_parquet
from par.infra.logs import job_log
from par.results.metrics import run_frames
from par.infra.provenance import provenance, provenance_json, read_provenance

with job_log(snakemake.log[0]) as log:
    records = {rec["task"]: rec for rec in map(read_json, snakemake.input.records)}
    inputs = snakemake.input.keys()
    search_seconds = {c["task"]: c["seconds"] for c in map(read_json, snakemake.input.cells)} if "cells" in inputs else {}
    weights = read_json(snakemake.input.plan)["extractor_weights"] if "plan" in inputs else "unused"
    w = snakemake.wildcards
    metrics, accuracy, tasks = run_frames(records, benchmark=w.bench, seed=int(w.seed), run=w.run,
                                          method=snakemake.params.method, search_seconds=search_seconds,
                                          extractor_weights=weights)
    log.info("\n%s", metrics.T.to_string())
    upstream = [*snakemake.input.records, *(snakemake.input.cells if "cells" in inputs else []),
                *([snakemake.input.plan] if "plan" in inputs else [])]
    metadata = {"provenance": provenance_json(provenance(snakemake.params, "cpu", extractor_weights=weights,
                                                         upstream=[read_provenance(p) for p in upstream]))}
    write_parquet(snakemake.output.metrics, metrics, schemas.METRICS, metadata)
    write_parquet(snakemake.output.accuracy, accuracy, schemas.ACCURACY_MATRIX, metadata)
    write_parquet(snakemake.output.tasks, tasks, schemas.TASKS, metadata)
