"""Rule task_groups_figure: the task groups of one PAR run, tasks named by their classes (paper Fig. 5)."""
from par.streams.datasets.catalog import cifar100_coarse_table
from par.infra.io import read_json
from par.infra.logs import job_log
from par.results.plots import placeholder, task_groups_figure, task_label

with job_log(snakemake.log[0]) as log:
    p = snakemake.params
    if "plan" not in snakemake.input.keys():
        placeholder(snakemake.output.figure, p.title, f"not run: {p.benchmark} / run {p.run} is not configured")
    else:
        plan = read_json(snakemake.input.plan)
        tasks = sorted(map(read_json, snakemake.input.tasks), key=lambda t: t["task"])
        stream = {"seed": plan["seed"], "dataset": tasks[0]["dataset"], "tasks": tasks}
        # CIFAR-100 tasks are named by their superclass when all their classes share one.
        superclass = None
        if stream["dataset"] == "cifar100":
            fine_to_coarse, fine_names, coarse_names = cifar100_coarse_table()
            superclass = {name: coarse_names[c] for name, c in zip(fine_names, fine_to_coarse)}
        labels = {t["task"]: task_label(t, stream["dataset"], with_dataset=False, superclass=superclass)
                  for t in stream["tasks"]}
        groups = {int(g): tasks for g, tasks in plan["groups"].items()}
        notes = {}
        for d in plan["tasks"]:
            if d["group"] not in notes:
                source = d["genotype_source"]
                notes[d["group"]] = "DARTS-V2 cell" if source == "darts_v2" else f"cell of T{source}"
        task_groups_figure(groups, labels, snakemake.output.figure,
                           f"{p.title}: {p.benchmark} seed {stream['seed']}, run {p.run}", notes)
        for g, tasks in sorted(groups.items()):
            log.info("group %d (%s): %s", g, notes[g], "; ".join(labels[t] for t in tasks))
