"""Rule prepare_stream: cut a dataset into a benchmark's tasks for one seed."""
from par.benchmarks import make_stream
from par.datasets import load_labels
from par.io import write_json
from par.logs import job_log
from par.provenance import provenance

with job_log(snakemake.log[0]) as log:
    train_labels, test_labels, class_names = load_labels(snakemake.input.images)
    stream = make_stream(snakemake.wildcards.bench, train_labels, test_labels, class_names,
                         int(snakemake.wildcards.seed), **snakemake.params.stream)
    for task in stream.tasks:
        log.info("task %d: classes %s  train %d  val %d  test %d", task.number, task.class_names,
                 len(task.train), len(task.val), len(task.test))
    write_json(snakemake.output[0], {**stream.to_json(), "provenance": provenance(snakemake.params, "cpu")})
