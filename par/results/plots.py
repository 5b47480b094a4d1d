"""Figures: the task-distance heatmap (paper Fig. 6), AP against parameter count,
the accuracy matrix of a run.  Every figure is written at :data:`DPI` dots per
inch (readable when printed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from par.infra.io import atomic_path  # noqa: E402


DPI = 160


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _tick_labels(n: int, labels: list[str] | None, width: int = 38) -> list[str]:
    """``"<t>: <label>"`` per task (1-based), labels shortened to ``width`` characters."""
    if labels is None:
        return [str(t + 1) for t in range(n)]
    return [f"{t + 1}: {text if len(text) <= width else text[:width - 1] + '…'}" for t, text in enumerate(labels)]


def _lower_triangle(ax, matrix: np.ndarray, labels: list[str] | None, *, strict: bool, cmap: str,
                    fmt: str, colour_label: str, vmin=None, vmax=None):
    """Draw the lower triangle of ``matrix`` (rows i, columns j ≤ i, or j < i when
    ``strict``), annotated; the other cells are blank."""
    n = matrix.shape[0]
    shown = np.tril(np.ones((n, n), dtype=bool), k=-1 if strict else 0)
    masked = np.ma.masked_where(~shown | np.isnan(matrix), matrix)
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax)
    ticks = _tick_labels(n, labels)
    ax.set_xticks(range(n), ticks, rotation=40 if labels else 0, ha="right" if labels else "center", fontsize=8)
    ax.set_yticks(range(n), ticks, fontsize=8)
    low = vmin if vmin is not None else (masked.min() if masked.count() else 0.0)
    high = vmax if vmax is not None else (masked.max() if masked.count() else 0.0)
    for i in range(n):
        for j in range(n):
            if shown[i, j] and not np.isnan(matrix[i, j]) and n <= 20:
                bright = (matrix[i, j] - low) > 0.6 * (high - low) if high > low else False
                ax.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize=7,
                        color="black" if bright else "white")
    ax.figure.colorbar(image, ax=ax, label=colour_label, fraction=0.046)
    return image


def distance_heatmap(distances: np.ndarray, path: str | Path, title: str, labels: list[str] | None = None) -> None:
    """Heatmap of D[i, j] = KL̂(q_i‖q_j) (N, N) for j < i: a new task i against
    every earlier task j, the pairs the plan reads (paper Eq. 4-6); the upper
    triangle and the diagonal are left blank.  ``labels``: one per task
    (dataset and classes, :func:`task_label`); tasks are numbered from 1."""
    n = distances.shape[0]
    size = 0.75 if labels else 0.6
    fig, ax = plt.subplots(figsize=(2.5 + size * n + (2.0 if labels else 0.0), 1.2 + size * n + (1.6 if labels else 0.0)))
    _lower_triangle(ax, distances, labels, strict=True, cmap="viridis", fmt=".2f", colour_label="KL(q_i ‖ q_j)")
    ax.set_xlabel("earlier task j")
    ax.set_ylabel("new task i")
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def accuracy_heatmap(accuracy: pd.DataFrame, path: str | Path, title: str, labels: list[str] | None = None) -> None:
    """The accuracy matrix r[t][u] of one run (``accuracy_matrix.parquet``: columns
    ``after_task`` t, ``task`` u ≤ t, ``accuracy`` a fraction) as a lower-triangular
    heatmap: row t = the model after learning task t, column u = the task tested;
    AP is the mean of the last row (Eq. 11)."""
    n = int(max(accuracy.after_task.max(), accuracy.task.max())) if len(accuracy) else 0
    matrix = np.full((n, n), np.nan)
    matrix[accuracy.after_task.to_numpy() - 1, accuracy.task.to_numpy() - 1] = accuracy.accuracy.to_numpy()
    size = 0.75 if labels else 0.6
    fig, ax = plt.subplots(figsize=(2.5 + size * n + (2.0 if labels else 0.0), 1.2 + size * n + (1.6 if labels else 0.0)))
    _lower_triangle(ax, matrix, labels, strict=False, cmap="magma", fmt=".2f", colour_label="test accuracy r[t][u]",
                    vmin=0.0, vmax=1.0)
    ax.set_xlabel("task tested u")
    ax.set_ylabel("after learning task t")
    ax.set_title(title, fontsize=10)
    _save(fig, path)


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def ap_vs_parameters(summary: pd.DataFrame, path: str | Path) -> None:
    """One panel per benchmark: AP against M (millions), a marker per run and seed.

    Each run keeps one colour and marker shape in every panel, in the legend's
    order (runs sorted by name, ``tab10`` colours in that order).  Markers are
    hollow and shrink from the first run to the last, so runs at the same point
    (e.g. ``ewc`` and ``finetune``, same network, same M) stay visible one inside
    the other."""
    benchmarks = sorted(summary.benchmark.unique())
    runs = sorted(summary.run.unique())
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(5.5 * len(benchmarks), 4.2), squeeze=False)
    for ax, bench in zip(axes[0], benchmarks):
        part = summary[summary.benchmark == bench]
        for k, run in enumerate(runs):
            rows = part[part.run == run]
            if not len(rows):
                continue
            ax.scatter(rows.M_millions, rows.AP, label=run, marker=MARKERS[k % len(MARKERS)],
                       s=max(30.0, 190.0 - 22.0 * k), facecolors="none", edgecolors=[colours(k % 10)], linewidths=1.6,
                       zorder=3 + k)
        ax.set_xlabel("M (million parameters)")
        ax.set_ylabel("AP (average test accuracy, Eq. 11)")
        ax.set_title(bench)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
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
