"""Rule learn_task: learn one task from its predecessor's state, test the new state.

Only the module of the task's strategy is imported (params.modules: a dotted
name, or a method_modules file path), never every method's: its code hash
(params.code) covers this script's imports plus that module's.
"""
from pathlib import Path

from par.infra.devices import describe, eval_batch_size, job_device
from par.infra.io import read_json, write_json
from par.learners.job import learn_task
from par.learners.strategies import STRATEGIES
from par.infra.logs import job_log
from par.nets.model import load_model, save_model
from par.nets.specs import with_genotype
from par.infra.plugins import import_source
from par.infra.provenance import provenance, read_provenance
from par.results.curves import curves_folder, epoch_curves
from par.infra.seeds import job_seed, seed_everything
from par.streams.tasks import Stream, task_from_json
from par.training import TrainConfig

with job_log(snakemake.log[0]) as log:
    for source in snakemake.params.modules:
        import_source(source)
    device_slot = job_device(snakemake.config, snakemake.threads)  # threads, CPU allocator; GPU slot below
    assignment = snakemake.params.assignment
    strategy = snakemake.params.strategy
    w = snakemake.wildcards
    tasks = [task_from_json(read_json(p)) for p in snakemake.input.tasks]
    stream = Stream.from_tasks(w.bench, int(w.seed), tasks)
    cell = read_json(snakemake.input.cell)["genotype"] if "cell" in snakemake.input.keys() else None
    body = with_genotype(strategy["body"], assignment["genotype_source"], cell)
    train_config = TrainConfig(**snakemake.params.training)
    # The strategy's own config section (Strategy.config), keys renamed by the strategy.
    name = assignment["strategy"]
    options = {name: STRATEGIES[name].options_from_config(strategy["options"])} if "options" in strategy else {}
    # images.h5 of every dataset the job trains or tests on: results/data/<dataset>/images.h5
    images = {Path(p).parent.name: p for p in snakemake.input.images}
    with device_slot as device:
        log.info("%s: task %d, %s, predecessor %s, on %s", snakemake.wildcards.run, assignment["task"],
                 assignment["strategy"], assignment["predecessor"], describe(device))
        seed = job_seed(stream.seed, "learn", assignment["task"])
        seed_everything(seed)
        predecessor = load_model(snakemake.input.predecessor, device) if assignment["predecessor"] else None
        # Per-epoch curves (config tensorboard): read here, not a param, so the switch re-runs nothing.
        curves = (curves_folder(snakemake.config["results_dir"], w.bench, w.seed, w.run, assignment["task"])
                  if snakemake.config.get("tensorboard") else None)
        with epoch_curves(curves):
            model, record = learn_task(assignment, stream, images, predecessor=predecessor, body_spec=body,
                                       train_config=train_config, strategy_options=options, device=device, seed=seed,
                                       eval_chunk=eval_batch_size(device, snakemake.config.get("eval_batch_size")))
    record["device"] = describe(device)
    upstream = [read_provenance(p) for p in snakemake.input.tasks]
    upstream += [read_provenance(snakemake.input.cell)] if "cell" in snakemake.input.keys() else []
    record["provenance"] = provenance(snakemake.params, describe(device), upstream=upstream)
    save_model(snakemake.output.state, model)
    write_json(snakemake.output.record, record)
