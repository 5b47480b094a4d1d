"""Rule sweep_figure: AP, M, experts and T against alpha (paper Fig. 3) or beta (Fig. 4)."""
from par.infra.io import read_parquet
from par.infra.logs import job_log
from par.results.plots import placeholder, sweep_figure
from par.results.tables import run_summary

with job_log(snakemake.log[0]) as log:
    p = snakemake.params
    summary = run_summary([read_parquet(f) for f in snakemake.input.metrics], p.aliases)
    points = summary[summary.run.isin(p.values)].assign(value=lambda f: f.run.map(p.values))
    title = f"{p.title} on {p.benchmark}"
    if points.empty:
        placeholder(snakemake.output.figure, title, f"not run: {p.benchmark} is not among the configured benchmarks")
    else:
        sweep_figure(points, p.parameter, snakemake.output.figure, title)
        log.info("\n%s", points[["run", "seed", "value", "AP", "M_millions", "n_groups", "hours"]].to_string())
