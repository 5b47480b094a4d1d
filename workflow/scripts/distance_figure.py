"""Rule distance_figure: task-distance heatmaps of several streams, tasks labelled (paper Fig. 6)."""
import numpy as np

from par.infra.io import read_json
from par.infra.logs import job_log
from par.relatedness.distances import load_distances
from par.results.plots import distance_heatmaps, placeholder, task_label

with job_log(snakemake.log[0]) as log:
    p = snakemake.params
    panels = []
    task_files = iter(snakemake.input.tasks)
    for table, (bench, seed, n_tasks) in zip(snakemake.input.distances, p.shown):
        tasks = [read_json(next(task_files)) for _ in range(n_tasks)]
        stream = {"benchmark": bench, "seed": seed, "dataset": tasks[0]["dataset"], "tasks": tasks}
        matrix = load_distances(table, len(stream["tasks"]))
        labels = [f"T{t['task']} " + task_label(t, stream["dataset"], max_names=2) for t in stream["tasks"]]
        panels.append((f"{stream['benchmark']} (seed {stream['seed']})", matrix, labels))
        log.info("%s:\n%s", stream["benchmark"], np.round(matrix, 3))
    if panels:
        distance_heatmaps(panels, snakemake.output.figure, p.title)
    else:
        placeholder(snakemake.output.figure, p.title,
                    f"not run: none of {', '.join(p.benchmarks)} is among the configured benchmarks")
