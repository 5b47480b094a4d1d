"""Rule switch_ablation: every paper-vs-code switch (docs/spec.md), one run each, beside the default run."""
from pathlib import Path

from par.infra import schemas
from par.paper.ablations import selected_switches
from par.infra.io import atomic_path, read_parquet, write_parquet
from par.infra.logs import job_log
from par.infra.provenance import provenance, provenance_json, read_provenance
from par.paper.ablations import switch_html, switch_markdown, switch_table
from par.results.tables import run_summary

with job_log(snakemake.log[0]) as log:
    p = snakemake.params
    summary = run_summary([read_parquet(f) for f in snakemake.input.metrics], p.aliases)
    table = switch_table(summary, selected_switches(p.switches), p.unavailable, p.benchmark, p.reference_run)
    record = provenance(p, "cpu", upstream=[read_provenance(f) for f in snakemake.input.metrics])
    write_parquet(snakemake.output.table, table, schemas.SWITCH_ABLATION, {"provenance": provenance_json(record)})
    markdown = switch_markdown(table, p.reference_run)
    with atomic_path(snakemake.output.markdown) as tmp:
        Path(tmp).write_text(markdown)
    with atomic_path(snakemake.output.html) as tmp:
        Path(tmp).write_text(switch_html(table, p.reference_run))
    log.info("\n%s", markdown)
