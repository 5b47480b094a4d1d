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
