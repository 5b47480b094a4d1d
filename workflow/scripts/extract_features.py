"""Rule extract_features: frozen ResNet18 features of one task's distance split."""
from par.infra.devices import describe, job_device
from par.relatedness.extractor import TaskFeatures, build_extractor, extract_features, save_features, weights_provenance
from par.infra.io import read_json
from par.infra.logs import job_log
from par.infra.provenance import provenance, read_provenance
from par.streams.tasks import read_task_pixels, task_from_json

with job_log(snakemake.log[0]) as log:
    device_slot = job_device(snakemake.config, snakemake.threads, tune_allocator=False)  # GPU slot below
    task = task_from_json(read_json(snakemake.input.task))
    split = snakemake.params.split
    ids = task.indices(split)
    pixels, labels = read_task_pixels(snakemake.input.images, task, split)
    weights = weights_provenance(snakemake.params.weights, snakemake.params.weights_seed)
    model = build_extractor(snakemake.params.weights, snakemake.params.weights_seed)
    with device_slot as device:
        log.info("extracting %d %s images of task %d on %s with %s", len(ids), split, task.number,
                 describe(device), weights)
        features = extract_features(model, pixels, task.mean, task.std,
                                    batch_size=snakemake.config["extractor"]["batch_size"], device=device)
    save_features(snakemake.output[0], TaskFeatures(task.number, features, labels, ids, task.classes, split, weights),
                  provenance(snakemake.params, describe(device), extractor_weights=weights,
                             upstream=[read_provenance(snakemake.input.task)]))
