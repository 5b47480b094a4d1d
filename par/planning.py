"""Task groups and a learning strategy per task (paper Sec. 3.1–3.3, Eq. 5–6; docs/spec.md §3).

The plan depends only on the distance matrix and the training-set sizes, so it
is known before any training; this is what lets the workflow train groups in
parallel.  Strategies:

- ``allocate-search``: new group, new expert whose cell is found by MDL search;
- ``allocate-reuse``: new group, new expert (fresh weights) reusing the cell of
  the nearest group's expert;
- ``regularize``: join the nearest group, learn with LwF distillation;
- ``regularize-head``: join the nearest group, train only the new head.

Two variants of docs/spec.md §3 are switches here: the order of Eq. 5 and Eq. 6
(``relatedness_map``) and the coarse level of the hierarchical search
(``coarse_search``: the β threshold of the authors' code, or a seeded draw
among the existing experts' cells and the unknown cell, paper Sec. 3.3).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

ALLOCATE_SEARCH = "allocate-search"
ALLOCATE_REUSE = "allocate-reuse"
REGULARIZE = "regularize"
REGULARIZE_HEAD = "regularize-head"
DARTS_V2 = "darts_v2"
UNKNOWN_CELL = "unknown"   # coarse-level candidate: a new cell found by MDL search
RELATEDNESS_MAPS = ("per_pair", "per_group")
COARSE_SEARCHES = ("threshold", "sample")


def relatedness_score(s_prime: float) -> float:
    """Eq. 6: s = min(s', 1 − e^{−2 s'}), mapping s' ∈ [0, ∞) monotonically into [0, 1)."""
    return min(s_prime, 1.0 - math.exp(-2.0 * s_prime))


_GROUP_DISTANCE = {"mean": np.mean, "min": np.min, "max": np.max}


def group_score(kl: np.ndarray, *, relatedness_map: str = "per_pair", group_distance: str = "mean",
                zero_is_far: bool = False) -> float:
    """s_{t,g} of Eq. 5–6 from the distances KL̂(q_t‖q_j) of task t to the tasks j of group g.

    kl: (|G_g|,) estimates ≥ 0.  ``relatedness_map``:

    - ``per_pair`` (authors' code, docs/spec.md §3 default): map every pair by Eq. 6,
      then combine over the group (``group_distance``: mean, min or max);
      with ``zero_is_far`` a mapped value of exactly 0 becomes 1.
    - ``per_group`` (paper text): combine the raw estimates (Eq. 5), then map
      by Eq. 6; with ``zero_is_far`` a raw estimate of exactly 0 becomes 1.

    Returns s in [0, 1].  Raises ValueError on an unknown map or combination.
    """
    if relatedness_map not in RELATEDNESS_MAPS:
        raise ValueError(f"relatedness_map must be one of {RELATEDNESS_MAPS}, not {relatedness_map!r}")
    if group_distance not in _GROUP_DISTANCE:
        raise ValueError(f"group_distance must be one of {sorted(_GROUP_DISTANCE)}, not {group_distance!r}")
    combine = _GROUP_DISTANCE[group_distance]
    kl = np.asarray(kl, dtype=np.float64)
    if relatedness_map == "per_pair":
        mapped = np.array([relatedness_score(float(x)) for x in kl])
        if zero_is_far:
            mapped[mapped == 0.0] = 1.0
        return float(combine(mapped))
    if zero_is_far:
        kl = np.where(kl == 0.0, 1.0, kl)
    return relatedness_score(float(combine(kl)))


def coarse_probabilities(cell_scores: list[float], beta: float, temperature: float) -> np.ndarray:
    """Probabilities of the coarse-level candidates (paper Sec. 3.3, ``coarse_search: sample``).

    cell_scores: s_{t,c} of each existing expert cell c (the smallest s_{t,g} over
    the groups whose expert uses it).  The unknown cell is scored β, so that
    P(c) ∝ exp(−s_{t,c}/τ) and P(unknown) ∝ exp(−β/τ): the closer a cell's
    groups, the likelier it is reused; as τ → 0 this is the β threshold of the
    authors' code.  Returns (len(cell_scores) + 1,) probabilities summing to 1,
    the unknown cell last.  Raises ValueError when ``temperature`` ≤ 0.
    """
    if temperature <= 0:
        raise ValueError(f"coarse_temperature must be > 0, not {temperature}")
    logits = -np.append(np.asarray(cell_scores, dtype=np.float64), beta) / temperature
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


@dataclass
class TaskDecision:
    """The plan entry of one task.

    ``genotype_source`` is the task whose searched cell (``cells/task{n}.json``)
    the task's new expert uses, ``"darts_v2"`` for the fixed DARTS-V2 cell, or
    None when the task joins a group.  ``nearest_group``/``score`` are g* and
    s_{t,g*}; ``group_scores`` holds s_{t,g} for every group that existed.
    """

    task: int
    group: int
    strategy: str
    predecessor: int | None
    group_tasks: list[int]
    genotype_source: int | str | None
    n_train: int
    nearest_group: int | None = None
    score: float | None = None
    group_scores: dict[int, float] = field(default_factory=dict)
    reason: str = ""
    coarse_probabilities: dict[str, float] = field(default_factory=dict)

    @property
    def searches_cell(self) -> bool:
        """True when this task runs its own MDL cell search."""
        return self.strategy == ALLOCATE_SEARCH and self.genotype_source == self.task

    def job_params(self) -> dict:
        """The fields that determine what a learn-task job computes.

        Scores are left out on purpose: a change of the distances that leaves
        every decision as it was must not re-run any training.
        """
        return {"task": self.task, "group": self.group, "strategy": self.strategy,
                "predecessor": self.predecessor, "group_tasks": list(self.group_tasks),
                "genotype_source": self.genotype_source}

    def to_json(self) -> dict:
        d = asdict(self)
        d["group_scores"] = {str(g): s for g, s in self.group_scores.items()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TaskDecision":
        d = dict(d)
        d["group_scores"] = {int(g): s for g, s in d.get("group_scores", {}).items()}
        return cls(**d)


# The authors' special case for tiny tasks (CTrL S_long), docs/spec.md §3: a task with at most
# this many training images joins the nearest group whose Q is at least this factor times larger.
TINY_TASK_SIZE = 25
TINY_TASK_FACTOR = 10.0


@dataclass(frozen=True)
class PlanSettings:
    """The config section ``planning`` and ``relatedness.zero_is_far`` (docs/spec.md §3;
    every default is in the config schema, none here).

    alpha, beta: thresholds on s (paper: α = 0.5, β = 0.75); s ≤ α regularizes,
        α < s ≤ β allocates reusing the cell of g*, s > β allocates with search.
    head_only_ratio: ρ; a joining task with n_train < ρ·Q_{g*} trains only its head
        (paper text 0.1, authors' code 0.5).
    group_distance: how s'_{t,g} combines task distances: ``mean`` (Eq. 5), ``min``, ``max``.
    relatedness_map, zero_is_far: order of Eq. 5 and 6 and the authors' 0 → 1
        quirk (see :func:`group_score`; authors' default ``per_pair``).
    tiny_task_rule: authors' special case: a task with n_train ≤ ``tiny_task_size``
        joins the nearest group whose Q ≥ ``tiny_task_factor``·n_train.
    cell_search: ``mdl`` (search cells) or ``darts_v2`` (every new expert uses the
        fixed DARTS-V2 cell: ablation "Fixed", Table 5).
    coarse_search: what a task that allocates (s > α) builds its expert from.
        ``threshold`` (authors' code): s ≤ β reuses the cell of g*, else searches.
        ``sample`` (paper Sec. 3.3): a draw among the cells of the existing
        experts and the unknown cell with :func:`coarse_probabilities`
        (``coarse_temperature`` τ), from a generator seeded by (seed, task),
        so the plan stays a function of the distances, sizes and seed.
    regularize: False turns parameter regularization off (Table 5 rows without
        "Reg."): no task joins a group; a task with s ≤ β reuses g*'s cell, one
        with s > β searches (the tiny-task rule is off with it).
    reuse_cells: False removes the coarse-grained level of the search space
        (Table 5 rows without "CS"): an allocating task always gets a new cell
        (searched, or DARTS-V2 with ``cell_search="darts_v2"``), never g*'s.

    Raises ValueError on an unknown ``group_distance``, ``relatedness_map`` or ``coarse_search``.
    """

    alpha: float
    beta: float
    head_only_ratio: float
    group_distance: str
    tiny_task_rule: bool
    cell_search: str
    relatedness_map: str
    coarse_search: str
    coarse_temperature: float
    regularize: bool
    reuse_cells: bool
    zero_is_far: bool
    tiny_task_size: int = TINY_TASK_SIZE
    tiny_task_factor: float = TINY_TASK_FACTOR

    def __post_init__(self) -> None:
        if self.group_distance not in _GROUP_DISTANCE:
            raise ValueError(f"group_distance must be one of {sorted(_GROUP_DISTANCE)}, not {self.group_distance!r}")
        if self.relatedness_map not in RELATEDNESS_MAPS:
            raise ValueError(f"relatedness_map must be one of {RELATEDNESS_MAPS}, not {self.relatedness_map!r}")
        if self.coarse_search not in COARSE_SEARCHES:
            raise ValueError(f"coarse_search must be one of {COARSE_SEARCHES}, not {self.coarse_search!r}")

    @classmethod
    def from_config(cls, planning: dict, zero_is_far: bool) -> "PlanSettings":
        """From a run's ``planning`` section and its ``relatedness.zero_is_far``."""
        return cls(**planning, zero_is_far=zero_is_far)

    @classmethod
    def from_schema(cls, **overrides) -> "PlanSettings":
        """The config schema's defaults (:func:`par.infra.config.schema_defaults`) with
        ``overrides`` (any field, ``zero_is_far`` included), for tests and scripts."""
        from par.infra.config import schema_defaults

        settings = {**schema_defaults("planning"), "zero_is_far": schema_defaults("relatedness")["zero_is_far"]}
        return cls(**{**settings, **overrides})


@dataclass
class _Groups:
    """The groups formed so far: members, Q_g (largest training set) and the genotype source of each expert."""

    members: list[list[int]] = field(default_factory=list)
    largest: list[int] = field(default_factory=list)
    genotype: list[int | str] = field(default_factory=list)

    def allocate(self, task: int, n: int, strategy: str, source: int | str, **extra) -> TaskDecision:
        self.members.append([task])
        self.largest.append(n)
        self.genotype.append(source)
        return TaskDecision(task, len(self.members), strategy, None, [task], source, n, **extra)

    def join(self, task: int, n: int, g: int, head_only_ratio: float, **extra) -> TaskDecision:
        strategy = REGULARIZE_HEAD if n < head_only_ratio * self.largest[g - 1] else REGULARIZE
        predecessor = self.members[g - 1][-1]
        self.members[g - 1].append(task)
        self.largest[g - 1] = max(self.largest[g - 1], n)
        return TaskDecision(task, g, strategy, predecessor, list(self.members[g - 1]), None, n, **extra)


def decide_task(task: int, n: int, kl: np.ndarray, groups: _Groups, settings: PlanSettings,
                seed: int) -> TaskDecision:
    """The decision for task ``task`` > 1 with ``n`` training images, given its
    distances ``kl`` (N,) to every task (``kl[j-1]`` = KL̂(q_task‖q_j)) and the
    groups formed so far, which it updates (docs/spec.md §3)."""
    new_cell = task if settings.cell_search == "mdl" else DARTS_V2
    scores = {
        g: group_score(kl[[m - 1 for m in members]], relatedness_map=settings.relatedness_map,
                       group_distance=settings.group_distance, zero_is_far=settings.zero_is_far)
        for g, members in enumerate(groups.members, start=1)
    }
    best = min(scores, key=lambda g: (scores[g], g))  # ties → lowest group id
    s = scores[best]
    extra = {"nearest_group": best, "score": s, "group_scores": scores}
    alpha, beta = settings.alpha, settings.beta
    if settings.regularize and settings.tiny_task_rule and n <= settings.tiny_task_size:
        eligible = [g for g in scores if groups.largest[g - 1] >= settings.tiny_task_factor * n]
        if eligible:
            g = min(eligible, key=lambda g: (scores[g], g))
            return groups.join(task, n, g, settings.head_only_ratio,
                               reason=f"tiny task (n_train={n} <= {settings.tiny_task_size})", **extra)
    if settings.regularize and s <= alpha:
        return groups.join(task, n, best, settings.head_only_ratio, reason=f"s={s:.4f} <= alpha={alpha}", **extra)
    if settings.coarse_search == "sample" and settings.reuse_cells:
        cells: dict[int | str, float] = {}   # existing expert cell -> smallest s of its groups
        for g, score in scores.items():
            cells[groups.genotype[g - 1]] = min(score, cells.get(groups.genotype[g - 1], math.inf))
        candidates = [*cells, UNKNOWN_CELL]
        p = coarse_probabilities(list(cells.values()), beta, settings.coarse_temperature)
        choice = candidates[int(np.random.default_rng([seed, task]).choice(len(candidates), p=p))]
        extra["coarse_probabilities"] = {str(c): float(q) for c, q in zip(candidates, p)}
        if choice == UNKNOWN_CELL:
            return groups.allocate(task, n, ALLOCATE_SEARCH, new_cell,
                                   reason=f"s={s:.4f} > alpha={alpha}; sampled the unknown cell", **extra)
        return groups.allocate(task, n, ALLOCATE_REUSE, choice,
                               reason=f"s={s:.4f} > alpha={alpha}; sampled existing cell {choice}", **extra)
    if s <= beta and settings.reuse_cells:
        return groups.allocate(task, n, ALLOCATE_REUSE, groups.genotype[best - 1],
                               reason=f"s={s:.4f} <= beta={beta}, alpha={alpha}"
                               + ("" if settings.regularize else " (regularization off)"), **extra)
    why = f"s={s:.4f} > beta={beta}" if s > beta else f"s={s:.4f}, cell reuse off"
    return groups.allocate(task, n, ALLOCATE_SEARCH, new_cell, reason=why, **extra)


def plan_tasks(distances: np.ndarray, n_train: list[int], settings: PlanSettings, *, seed: int) -> list[TaskDecision]:
    """Decide group and strategy of every task (docs/spec.md §3): task 1 founds
    group 1 and searches a cell, every later task is :func:`decide_task`.

    distances: (N, N); ``distances[t-1, j-1]`` = KL̂(q_t‖q_j).  Only j < t is read.
    n_train: training-set size of each task, length N.  ``seed``: the stream's
    seed (``coarse_search: sample`` draws from it).

    Raises ValueError on inconsistent shapes.
    """
    distances = np.asarray(distances, dtype=np.float64)
    n_tasks = len(n_train)
    if distances.shape != (n_tasks, n_tasks):
        raise ValueError(f"distances has shape {distances.shape}; expected ({n_tasks}, {n_tasks})")
    groups = _Groups()
    decisions = [groups.allocate(1, n_train[0], ALLOCATE_SEARCH, 1 if settings.cell_search == "mdl" else DARTS_V2,
                                 reason="first task")] if n_tasks else []
    for task in range(2, n_tasks + 1):
        decisions.append(decide_task(task, n_train[task - 1], distances[task - 1], groups, settings, seed))
    return decisions
