"""Accuracy matrix, AP, AF, parameter count and time of one run (paper Sec. 4.1, Eq. 11; docs/spec.md §6)."""
from __future__ import annotations

import numpy as np


def accuracy_matrix(records: dict[int, dict], n_tasks: int) -> np.ndarray:
    """r[t][u]: test accuracy on task u after learning task t, as an (N, N) array
    (row t−1, column u−1; NaN above the diagonal).

    ``records[t]["test_accuracy"]`` maps u (str or int) to the accuracy measured
    after task t.  Entries not measured after t (u outside t's group) carry the
    last value measured for u: groups are independent, so learning t cannot
    change them.  Raises ValueError if a task's own accuracy is missing.
    """
    r = np.full((n_tasks, n_tasks), np.nan)
    for t in range(1, n_tasks + 1):
        if t > 1:
            r[t - 1, : t - 1] = r[t - 2, : t - 1]
        measured = {int(u): float(a) for u, a in records[t]["test_accuracy"].items()}
        if t not in measured:
            raise ValueError(f"the state after task {t} was not tested on task {t}")
        for u, acc in measured.items():
            if u > t:
                raise ValueError(f"the state after task {t} was tested on a later task {u}")
            r[t - 1, u - 1] = acc
    return r


def average_performance(r: np.ndarray) -> float:
    """AP = (1/N) Σ_u r[N][u] (Eq. 11)."""
    return float(np.mean(r[-1]))


def forgetting(r: np.ndarray) -> np.ndarray:
    """Per task u: r[N][u] − r[u][u] (≤ 0 when accuracy was lost), shape (N,)."""
    return r[-1] - np.diag(r)


def average_forgetting(r: np.ndarray) -> float:
    """AF = (1/N) Σ_u (r[N][u] − r[u][u]) (Eq. 11; negative, as the paper prints it)."""
    return float(np.mean(forgetting(r)))


def total_parameters(records: dict[int, dict]) -> int:
    """M: parameters of every final model (experts/backbones and all their heads).

    A model's final state is the state of a task that is no other task's
    predecessor; each record's ``n_params`` counts its model's body and heads.
    """
    predecessors = {rec["predecessor"] for rec in records.values() if rec["predecessor"] is not None}
    return int(sum(rec["n_params"] for t, rec in records.items() if t not in predecessors))


def wall_time(records: dict[int, dict], search_seconds: dict[int, float] | None = None) -> tuple[float, float]:
    """(total seconds over all learn and search jobs, critical-path seconds).

    The critical path follows the DAG: a task starts when its predecessor and
    (for a new expert) the search of its cell are done; groups run in parallel.
    """
    search_seconds = search_seconds or {}
    finish: dict[int, float] = {}
    for t in sorted(records):
        rec = records[t]
        ready = finish[rec["predecessor"]] if rec["predecessor"] is not None else 0.0
        source = rec.get("genotype_source")
        if isinstance(source, int) and source in search_seconds:
            ready = max(ready, search_seconds[source])
        finish[t] = ready + rec["seconds"]
    total = sum(rec["seconds"] for rec in records.values()) + sum(search_seconds.values())
    return float(total), float(max(finish.values(), default=0.0))


def run_frames(records: dict[int, dict], *, benchmark: str, seed: int, run: str, method: str,
               search_seconds: dict[int, float] | None = None, extractor_weights: str = "unused"):
    """The three tables of one run, as DataFrames in the column order of
    :mod:`par.infra.schemas`: (metrics: one row, accuracy matrix: long form, tasks: one row per task)."""
    import pandas as pd

    from par.infra import schemas

    search_seconds = search_seconds or {}
    n = len(records)
    r = accuracy_matrix(records, n)
    key = {"benchmark": benchmark, "seed": seed, "run": run, "method": method}
    total, critical = wall_time(records, search_seconds)
    n_params = total_parameters(records)
    devices = sorted({rec.get("device", "unknown") for rec in records.values()})
    metrics = pd.DataFrame([{
        **key, "n_tasks": n, "n_groups": len({rec["group"] for rec in records.values()}),
        "AP": average_performance(r), "AF": average_forgetting(r), "diagonal_mean": float(np.mean(np.diag(r))),
        "n_params": n_params, "M_millions": n_params / 1e6, "hours": total / 3600.0,
        "critical_path_hours": critical / 3600.0, "extractor_weights": extractor_weights,
        "device": ", ".join(devices),
    }], columns=schemas.METRICS.names)
    accuracy = pd.DataFrame([
        {**key, "after_task": t, "task": u, "accuracy": r[t - 1, u - 1],
         "measured": str(u) in {str(k) for k in records[t]["test_accuracy"]}}
        for t in range(1, n + 1) for u in range(1, t + 1)
    ], columns=schemas.ACCURACY_MATRIX.names)
    lost = forgetting(r)
    tasks = pd.DataFrame([
        {**key, "task": t, "group": rec["group"], "strategy": rec["strategy"],
         "predecessor": rec["predecessor"],
         "genotype_source": None if rec["genotype_source"] is None else str(rec["genotype_source"]),
         "n_train": rec["n_train"], "n_params": rec["n_params"], "accuracy_when_learned": r[t - 1, t - 1],
         "final_accuracy": r[n - 1, t - 1], "forgetting": lost[t - 1], "val_accuracy": rec["val_accuracy"],
         "epochs_run": rec["epochs_run"], "search_seconds": float(search_seconds.get(t, 0.0)),
         "seconds": rec["seconds"]}
        for t, rec in sorted(records.items())
    ], columns=schemas.TASKS.names)
    tasks["predecessor"] = tasks["predecessor"].astype("Int64")
    return metrics, accuracy, tasks
