"""Rule search_cell: MDL search of a cell for one allocate-search task (docs/spec.md §4)."""
from par.infra.devices import describe, eval_batch_size, job_device
from par.infra.io import read_json, write_json
from par.infra.logs import job_log
from par.search.mdl import SearchConfig, search_cell
from par.infra.provenance import provenance, read_provenance
from par.results.curves import curves_folder, epoch_curves
from par.infra.seeds import job_seed, seed_everything
from par.streams.tasks import task_data, task_from_json

with job_log(snakemake.log[0]) as log:
    device_slot = job_device(snakemake.config, snakemake.threads)  # threads, CPU allocator; GPU slot below
    task = task_from_json(read_json(snakemake.input.task))
    images, labels = task_data({task.dataset: snakemake.input.images}, task, "train")
    config = SearchConfig(**snakemake.params.search)
    # result.seconds is measured by search_cell, inside acquire_device: waiting for a GPU slot is not in T.
    with device_slot as device:
        log.info("searching a cell for task %d (%d images) on %s", task.number, len(labels), describe(device))
        seed = job_seed(int(snakemake.wildcards.seed), "search", task.number)
        seed_everything(seed)
        # Per-epoch curves (config tensorboard): read here, not a param, so the switch re-runs nothing.
        w = snakemake.wildcards
        curves = (curves_folder(snakemake.config["results_dir"], w.bench, w.seed, w.run, task.number, search=True)
                  if snakemake.config.get("tensorboard") else None)
        with epoch_curves(curves):
            result = search_cell(images, labels, task.n_classes, task.mean, task.std, config, device, seed,
                                 eval_chunk=eval_batch_size(device, snakemake.config.get("eval_batch_size")))
    log.info("genotype: %s", result.genotype.to_json())
    write_json(snakemake.output[0], {
        "task": task.number, "genotype": result.genotype.to_json(), "search": snakemake.params.search,
        "seconds": result.seconds, "device": describe(device), "history": result.history,
        "provenance": provenance(snakemake.params, describe(device),
                                 upstream=[read_provenance(snakemake.input.task)]),
    })
