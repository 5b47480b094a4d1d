"""Rule paper_table: one of the paper's Tables 1-5 beside our runs, with a verdict per cell;
runs of methods the paper does not report (inputs of Tables 1-4) as extra rows without a verdict."""
from pathlib import Path

from par.infra import schemas
from par.infra.io import atomic_path, read_parquet, write_parquet
from par.infra.logs import job_log
from par.infra.provenance import provenance, provenance_json, read_provenance
from par.paper.render import table_html, table_markdown
from par.results.tables import run_summary
from par.paper.targets import TABLE_TITLES, load_targets, runs_not_in_the_paper, table_cells

with job_log(snakemake.log[0]) as log:
    summary = run_summary([read_parquet(p) for p in snakemake.input.metrics], snakemake.params.aliases)
    number = int(snakemake.wildcards.number)
    extra_runs = runs_not_in_the_paper(dict(zip(summary.run, summary.method)))
    cells = table_cells(load_targets(), summary, number, measured_on=snakemake.params.measured_on,
                        extra_runs=extra_runs)
    # the table combines runs: its provenance lists everything that went into them (key upstream)
    record = provenance(snakemake.params, "cpu", upstream=[read_provenance(f) for f in snakemake.input.metrics])
    write_parquet(snakemake.output.table, cells, schemas.TARGET_CELLS, {"provenance": provenance_json(record)})
    markdown = table_markdown(cells)
    for path, text in ((snakemake.output.markdown, markdown),
                       (snakemake.output.html, table_html(TABLE_TITLES[number], cells))):
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
    log.info("\n%s", markdown)
