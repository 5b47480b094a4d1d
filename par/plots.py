"""Figures: the task-distance heatmap (paper Fig. 6) and AP against parameter count."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from par.io import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def distance_heatmap(distances: np.ndarray, path: str | Path, title: str) -> None:
    """Heatmap of D[i, j] = KL̂(q_i‖q_j) (N, N), annotated, tasks numbered from 1."""
    n = distances.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.6 + 0.6 * n))
    image = ax.imshow(distances, cmap="viridis")
    ax.set_xticks(range(n), [str(j + 1) for j in range(n)])
    ax.set_yticks(range(n), [str(i + 1) for i in range(n)])
    ax.set_xlabel("earlier task j")
    ax.set_ylabel("new task i")
    top = np.nanmax(distances) if distances.size else 0.0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{distances[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if distances[i, j] > 0.6 * top else "white")
    fig.colorbar(image, ax=ax, label="KL(q_i || q_j)")
    ax.set_title(title)
    _save(fig, path)


def ap_vs_parameters(summary: pd.DataFrame, path: str | Path) -> None:
    """One panel per benchmark: AP against M (millions), a marker per run and seed."""
    benchmarks = sorted(summary.benchmark.unique())
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(4.5 * len(benchmarks), 3.6), squeeze=False)
    for ax, bench in zip(axes[0], benchmarks):
        part = summary[summary.benchmark == bench]
        for run, rows in part.groupby("run"):
            ax.scatter(rows.M_millions, rows.AP, label=run)
        ax.set_xlabel("M (million parameters)")
        ax.set_ylabel("AP")
        ax.set_title(bench)
        ax.legend(fontsize=8)
    _save(fig, path)


def placeholder(path: str | Path, title: str, message: str) -> None:
    """A figure that says why it is empty (e.g. its benchmark was not run)."""
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    _save(fig, path)


# Panels of the paper's Fig. 3 and 4: summary column -> axis label.
SWEEP_PANELS = (("AP", "AP"), ("M_millions", "M (million parameters)"), ("n_groups", "experts"),
                ("hours", "T (hours)"))


def sweep_figure(points: pd.DataFrame, parameter: str, path: str | Path, title: str) -> None:
    """AP, M, number of experts and T against ``parameter`` (paper Fig. 3: α, Fig. 4: β).

    ``points``: one row per (value, seed) with columns ``value`` and the
    :data:`SWEEP_PANELS` columns; each panel shows mean ± std over seeds.
    """
    fig, axes = plt.subplots(1, len(SWEEP_PANELS), figsize=(4.0 * len(SWEEP_PANELS), 3.2))
    columns = [column for column, _ in SWEEP_PANELS]
    stats = points.groupby("value")[columns].agg(["mean", "std"]).sort_index()
    for ax, (column, label) in zip(axes, SWEEP_PANELS):
        ax.errorbar(stats.index, stats[column]["mean"], yerr=stats[column]["std"].fillna(0.0), marker="o", capsize=3)
        ax.set_xlabel(parameter)
        ax.set_ylabel(label)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def task_groups_figure(groups: dict[int, list[int]], task_labels: dict[int, str], path: str | Path, title: str,
                       expert_notes: dict[int, str] | None = None) -> None:
    """Task groups as coloured columns, one box per task named by ``task_labels``
    (paper Fig. 5: tasks of CIFAR100-coarse named by superclass)."""
    expert_notes = expert_notes or {}
    n_groups = len(groups)
    depth = max(len(t) for t in groups.values())
    fig, ax = plt.subplots(figsize=(max(4.0, 2.6 * n_groups), 0.9 + 0.55 * depth))
    colours = plt.get_cmap("tab20")
    for col, (group, tasks) in enumerate(sorted(groups.items())):
        colour = colours(col % 20)
        ax.text(col, -0.9, f"expert {group}\n{expert_notes.get(group, '')}", ha="center", va="center", fontsize=8,
                weight="bold")
        for row, task in enumerate(tasks):
            ax.text(col, row, f"T{task}: {task_labels.get(task, '')}", ha="center", va="center", fontsize=7, wrap=True,
                    bbox={"boxstyle": "round", "facecolor": colour, "alpha": 0.6})
    ax.set_xlim(-0.6, n_groups - 0.4)
    ax.set_ylim(depth - 0.4, -1.5)
    ax.axis("off")
    ax.set_title(title)
    _save(fig, path)


def distance_heatmaps(panels: list[tuple[str, np.ndarray, list[str]]], path: str | Path, title: str) -> None:
    """Side-by-side heatmaps of D[i, j] = KL̂(q_i‖q_j), one per (title, matrix,
    task labels) (paper Fig. 6: four CTrL streams)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    for ax, (name, matrix, labels) in zip(axes[0], panels):
        n = matrix.shape[0]
        image = ax.imshow(matrix, cmap="viridis")
        ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(n), labels, fontsize=7)
        top = np.nanmax(matrix) if matrix.size else 0.0
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if matrix[i, j] > 0.6 * top else "white")
        ax.set_title(name)
        fig.colorbar(image, ax=ax, fraction=0.046, label="KL(q_i || q_j)")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def task_label(task: dict, dataset: str, *, max_names: int = 5, with_dataset: bool = True,
               superclass: dict[str, str] | None = None) -> str:
    """A task's label from its stream entry (``stream.json``): its ``name`` when
    the stream gives one; else the superclass its classes share, when
    ``superclass`` (class name -> superclass name) maps all of them to one (paper
    Fig. 5: CIFAR100-coarse tasks named by superclass); else its class names (the
    first ``max_names``).  Prefixed by its dataset when asked (CTrL streams mix
    datasets; a task's own ``dataset`` wins over the stream's)."""
    names = list(task.get("class_names", []))
    shared = {superclass.get(n) for n in names} if superclass else set()
    if task.get("name"):
        text = str(task["name"])
    elif len(shared) == 1 and None not in shared:
        text = shared.pop().replace("_", " ")
    else:
        text = ", ".join(names[:max_names]) + (" …" if len(names) > max_names else "")
    source = task.get("dataset", dataset)
    return f"{source}: {text}" if with_dataset and source else text
