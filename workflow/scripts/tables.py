"""Rule tables: summary per seed and mean ± std beside the paper's numbers."""
from pathlib import Path

from par import schemas
from par.io import atomic_path, read_parquet, write_parquet
from par.logs import job_log
from par.plots import ap_vs_parameters
from par.provenance import provenance, provenance_json, read_provenance
from par.tables import aggregate_markdown, aggregate_table, summary_markdown, summary_table

with job_log(snakemake.log[0]) as log:
    summary = summary_table([read_parquet(p) for p in snakemake.input])
    aggregate = aggregate_table(summary)
    # the tables combine runs: their provenance lists every code hash, extractor
    # weights, device and package versions that went into them (key upstream)
    metadata = {"provenance": provenance_json(provenance(snakemake.params, "cpu",
                                                         upstream=[read_provenance(p) for p in snakemake.input]))}
    write_parquet(snakemake.output.summary, summary, schemas.SUMMARY, metadata)
    write_parquet(snakemake.output.aggregate, aggregate, schemas.AGGREGATE, metadata)
    for path, text in ((snakemake.output.summary_md, summary_markdown(summary)),
                       (snakemake.output.aggregate_md, aggregate_markdown(aggregate))):
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
    ap_vs_parameters(summary, snakemake.output.figure)
    log.info("\n%s", aggregate_markdown(aggregate))
