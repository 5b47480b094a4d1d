"""Workflow wiring of the authors'-code switches: a sampled coarse-level search planned
before training (SPEC §4, ``planning.coarse_search: sample``) and ``relatedness.zero_is_far``
reaching the plan.  Only the plan job runs: its inputs (task files, distances) are written
here, and ``--allowed-rules`` keeps Snakemake from rebuilding them."""
import json

import numpy as np
import pandas as pd

from par.infra import schemas
from par.streams.prepare import prepare_task
from par.streams.spec import load_spec, resolve_tasks
from par.infra.io import write_json, write_parquet
from test_workflow import config_for, scheduled_jobs, snakemake

DOWNSTREAM = ["plan", "search_cell", "learn_task", "metrics", "tables", "all_tables"]


def test_sampled_coarse_search_is_planned_before_training(tmp_path):
    res = tmp_path / "results"
    labels = np.repeat(np.arange(10), 10)
    for task in resolve_tasks(load_spec("cifar10-5"), 0):
        prepared = prepare_task(task, labels, labels, [str(c) for c in range(10)])
        write_json(res / f"data/cifar10-5/seed0/task{task['task']}.json",
                   {**prepared, "mean": [0.5] * 3, "std": [0.25] * 3, "provenance": {"test": True}})
    kl = np.random.default_rng(0).uniform(0.5, 2.5, size=(5, 5))
    kl[3, 0] = 0.0                                  # task 4 is identical to task 1: far, by zero_is_far
    write_parquet(res / "relatedness/cifar10-5/seed0/distances.parquet",
                  pd.DataFrame([{"i": i + 1, "j": j + 1, "kl": kl[i, j]} for i in range(5) for j in range(5)]),
                  schemas.DISTANCES, metadata={"extractor_weights": "test", "provenance": json.dumps({"test": True})})
    (res / "data/cifar10").mkdir(parents=True)
    (res / "data/cifar10/images.h5").touch()        # read by no job that runs here
    config = config_for(tmp_path / "no-data", planning={"alpha": 0.5, "beta": 0.75, "coarse_search": "sample"})
    config["relatedness"] = {"zero_is_far": True}
    config["runs"] = {"par": {"method": "par"}}
    result = snakemake(tmp_path, config, "results/runs/cifar10-5/seed0/par/plan.json",
                       "--allowed-rules", *DOWNSTREAM)
    assert result.returncode == 0, result.stderr[-4000:]
    plan = json.loads((res / "runs/cifar10-5/seed0/par/plan.json").read_text())
    assert plan["planning"]["coarse_search"] == "sample" and plan["planning"]["zero_is_far"] is True
    tasks = plan["tasks"]
    assert tasks[3]["group_scores"]["1"] == 1.0       # authors' quirk, after Eq. 6
    for t in tasks[1:]:
        assert t["strategy"] in ("allocate-search", "allocate-reuse")   # every s > alpha = 0.5
        assert abs(sum(t["coarse_probabilities"].values()) - 1) < 1e-9
    searching = {t["task"] for t in tasks if t["genotype_source"] == t["task"]}
    # The DAG follows from the plan alone: one search per drawn unknown cell, every task learned.
    dry = snakemake(tmp_path, config, "all_tables", "--dry-run", "--allowed-rules", *DOWNSTREAM)
    assert dry.returncode == 0, dry.stderr[-4000:]
    jobs = scheduled_jobs(dry.stdout)
    assert {t for rule, _, t in jobs if rule == "search_cell"} == searching
    assert {t for rule, _, t in jobs if rule == "learn_task"} == {1, 2, 3, 4, 5}
