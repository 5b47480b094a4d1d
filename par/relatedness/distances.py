"""Task relatedness by the Nearest-Prototype KL estimate (paper Sec. 3.1, Eq. 2–4; docs/spec.md §2).

For a new task i and an earlier task j, only task i's features and task j's
class prototypes are needed:

- ρ(l) = ‖X_l − U^i_{c(l)}‖  (distance to its own class prototype, Eq. 2)
- ν(l) = min_{c ∈ C_j} ‖X_l − U^j_c‖  (distance to the nearest prototype of j, Eq. 3)
- KL̂(q_i‖q_j) = Σ_{c ∈ C_i} mean_{l ∈ c} log(ν(l)/ρ(l))  (Eq. 4, a sum over classes)
"""
from __future__ import annotations

import json

import h5py
import numpy as np

from par.infra.io import atomic_path, read_hdf5

# Added to ρ and ν before the log so that a sample lying exactly on a prototype
# (ρ = 0, e.g. a class with a single sample) gives a large finite value, never inf/NaN.
DISTANCE_EPSILON = 1e-8


def class_prototypes(features: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class means U_c of ``features`` (n, d) grouped by ``labels`` (n,) in 0..n_classes-1.

    Returns (n_classes, d) float64; row c is the prototype of local class c.
    Raises ValueError if a class has no sample.
    """
    features = np.asarray(features, dtype=np.float64)
    counts = np.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        raise ValueError(f"classes {np.flatnonzero(counts == 0).tolist()} have no sample")
    sums = np.zeros((n_classes, features.shape[1]))
    np.add.at(sums, labels, features)
    return sums / counts[:, None]


def _distances_to(x: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    # Same arithmetic as rho (a norm of differences), so that nu <= rho holds exactly
    # when the own prototypes are among the candidates (KL of a task to itself is 0).
    return np.stack([np.linalg.norm(x - u, axis=1) for u in prototypes], axis=1)


def per_class_log_ratios(features: np.ndarray, labels: np.ndarray, own_prototypes: np.ndarray,
                         other_prototypes: np.ndarray, *, epsilon: float = DISTANCE_EPSILON) -> np.ndarray:
    """k_c = mean over samples of class c of log(ν/ρ), for each class of the new task.

    features: (n, d) of the new task; labels: (n,) local labels; own_prototypes:
    (k_i, d); other_prototypes: (k_j, d).  Returns (k_i,) float64.
    """
    x = np.asarray(features, dtype=np.float64)
    rho = np.linalg.norm(x - own_prototypes[labels], axis=1)
    nu = _distances_to(x, np.asarray(other_prototypes, dtype=np.float64)).min(axis=1)
    log_ratio = np.log((nu + epsilon) / (rho + epsilon))
    n_classes = own_prototypes.shape[0]
    return np.bincount(labels, weights=log_ratio, minlength=n_classes) / np.bincount(labels, minlength=n_classes)


def nearest_prototype_kl(features: np.ndarray, labels: np.ndarray, own_prototypes: np.ndarray,
                         other_prototypes: np.ndarray, *, clamp_per_class: bool = True,
                         epsilon: float = DISTANCE_EPSILON) -> float:
    """KL̂(q_i‖q_j) of Eq. 4: the sum over the new task's classes of k_c.

    ``clamp_per_class`` clamps each k_c at 0 (authors' code, docs/spec.md §2 default).
    The authors' quirk that turns an estimate of 0 into 1 belongs to the plan
    (:func:`par.planning.group_score`, ``zero_is_far``), since their code applies
    it after Eq. 6.  Shapes as in :func:`per_class_log_ratios`.
    """
    k = per_class_log_ratios(features, labels, own_prototypes, other_prototypes, epsilon=epsilon)
    if clamp_per_class:
        k = np.maximum(k, 0.0)
    return float(k.sum())


def distance_matrix(features: list[np.ndarray], labels: list[np.ndarray], prototypes: list[np.ndarray], *,
                    clamp_per_class: bool = True, epsilon: float = DISTANCE_EPSILON,
                    block_elements: int = 2 ** 24) -> np.ndarray:
    """The full N×N matrix D[i, j] = KL̂(q_{i+1}‖q_{j+1}) over all task pairs (both directions).

    ``features[t]`` (n_t, d), ``labels[t]`` (n_t,) and ``prototypes[t]`` (k_t, d)
    belong to task t+1; options as in :func:`nearest_prototype_kl`, whose values
    this reproduces (vectorised over all j at once: one matrix product per row i
    finds each sample's nearest prototype of every task, whose distance is then
    computed exactly as there; only a near-tie between two prototypes, closer than
    rounding, could pick the other one, changing ν by rounding only).
    ``block_elements`` bounds the temporary (rows × N × d) array.
    Planning uses only the entries j < i (earlier tasks); the rest is for heatmaps.
    """
    n = len(features)
    all_protos = np.concatenate([np.asarray(p, dtype=np.float64) for p in prototypes])
    owner = np.repeat(np.arange(n), [len(p) for p in prototypes])  # task of each prototype row
    sq_protos = (all_protos ** 2).sum(axis=1)
    out = np.zeros((n, n))
    for i in range(n):
        x = np.asarray(features[i], dtype=np.float64)
        own = np.asarray(prototypes[i], dtype=np.float64)
        rho = np.linalg.norm(x - own[labels[i]], axis=1)
        # Nearest prototype of every task for every sample: squared distances by one matrix
        # product pick it, then its distance is recomputed as the norm of the difference,
        # the arithmetic of nearest_prototype_kl (so values are those of the pairwise loop).
        approx = (x ** 2).sum(axis=1)[:, None] - 2.0 * x @ all_protos.T + sq_protos[None, :]
        nearest = np.empty((len(x), n), dtype=np.int64)
        for j in range(n):
            cols = np.flatnonzero(owner == j)
            nearest[:, j] = cols[np.argmin(approx[:, cols], axis=1)]
        nu = np.empty((len(x), n))
        rows = max(1, block_elements // max(1, n * x.shape[1]))
        for b in range(0, len(x), rows):
            diff = x[b:b + rows, None, :] - all_protos[nearest[b:b + rows]]
            nu[b:b + rows] = np.linalg.norm(diff, axis=2)
        log_ratio = np.log((nu + epsilon) / (rho[:, None] + epsilon))
        n_classes = own.shape[0]
        sums = np.stack([np.bincount(labels[i], weights=log_ratio[:, j], minlength=n_classes) for j in range(n)])
        k = sums / np.bincount(labels[i], minlength=n_classes)  # (N, k_i)
        if clamp_per_class:
            k = np.maximum(k, 0.0)
        out[i] = np.ascontiguousarray(k).sum(axis=1)
    return out


def prototype_weights(path) -> str:
    """The extractor weights recorded in a prototypes file (:func:`save_prototypes`)."""
    with read_hdf5(path) as f:
        return str(f.attrs["weights"])


def save_prototypes(path, prototypes: dict[int, tuple[list[int], np.ndarray]], weights: str,
                    provenance: dict | None = None) -> None:
    """Write per-task prototypes to HDF5: group ``task{t}`` with ``classes`` (k,)
    dataset class ids and ``prototypes`` (k, d) float64; attribute ``weights``,
    and ``provenance``, JSON (:data:`par.infra.schemas.PROVENANCE`), when given."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for task, (classes, protos) in prototypes.items():
            group = f.create_group(f"task{task}")
            group.create_dataset("classes", data=np.asarray(classes, dtype=np.int64))
            group.create_dataset("prototypes", data=protos)
        f.attrs["weights"] = weights
        if provenance is not None:
            f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)


def load_prototypes(path) -> dict[int, np.ndarray]:
    """Per task number, its (k, d) prototypes, from :func:`save_prototypes`.

    Raises :class:`par.infra.io.CorruptFileError` naming the file when it is unreadable."""
    with read_hdf5(path) as f:
        return {int(name[len("task"):]): f[name]["prototypes"][...] for name in f}


def load_distances(path, n_tasks: int | None = None) -> np.ndarray:
    """The (n, n) float64 matrix D[i − 1, j − 1] = KL̂(q_i‖q_j) (Eq. 4) from a distances
    Parquet file (columns ``i``, ``j``, ``kl``: :data:`par.infra.schemas.DISTANCES`);
    pairs the file does not list are 0.  ``n_tasks``: n (default: the largest task
    number in the file).

    Raises :class:`par.infra.io.CorruptFileError` when the file is unreadable and
    ValueError when a task number is outside 1…n."""
    from par.infra.io import read_parquet

    frame = read_parquet(path)
    largest = int(max(frame.i.max(), frame.j.max())) if len(frame) else 0
    n = largest if n_tasks is None else n_tasks
    if len(frame) and (min(frame.i.min(), frame.j.min()) < 1 or largest > n):
        raise ValueError(f"{path}: task numbers {int(min(frame.i.min(), frame.j.min()))}…{largest} "
                         f"are not all within 1…{n}")
    distances = np.zeros((n, n))
    distances[frame.i - 1, frame.j - 1] = frame.kl
    return distances
