"""Rule prepare_stream: cut one task of a stream from its dataset for one seed."""
from par.streams.datasets.catalog import load_labels
from par.infra.io import read_json
from par.infra.logs import job_log
from par.infra.provenance import provenance
from par.streams.spec import describe, prepare_task, task_normalisation, task_users, write_task
from par.streams.tasks import task_from_json

with job_log(snakemake.log[0]) as log:
    spec = snakemake.params.task
    train_labels, test_labels, class_names = load_labels(snakemake.input.images)
    train_users, test_users = task_users(snakemake.input.images) if spec.get("user") else (None, None)
    earlier = {d["task"]: d for d in map(read_json, snakemake.input.earlier)}
    prepared = prepare_task(spec, train_labels, test_labels, class_names, train_users=train_users,
                            test_users=test_users, earlier=earlier, caps=snakemake.params.stream)
    prepared["mean"], prepared["std"] = task_normalisation(prepared, snakemake.input.images)
    log.info("%s; mean %s std %s", describe(prepared), prepared["mean"], prepared["std"])
    task_from_json(prepared)  # fails here, not in a later job, if anything is missing
    write_task(snakemake.output[0], {**prepared, "provenance": provenance(snakemake.params, "cpu")})
