"""How often the order of Eq. 5 and Eq. 6 changes the plan (SPEC §3).

    python tools/plan_order.py [--matrices 10000] [--tasks 10] [--max-kl 2.5] [--seed 0]

Draws random task-distance matrices (entries uniform in [0, max_kl], the range a sum
of 10 clamped class terms reaches with ImageNet features) and plans each with
``relatedness_map: per_pair`` (authors' code) and ``per_group`` (paper text), at the
default alpha 0.5, beta 0.75.  Prints the share of matrices whose plans differ
(any task's group, strategy, predecessor or cell source) and the share of tasks
whose decision differs.
"""
from __future__ import annotations

import argparse

import numpy as np

from par.planning import PlanSettings, plan_tasks


def make_plan(distances, n_train, *, seed=0, **settings):
    """plan_tasks with the config schema's planning settings, ``settings`` overriding some."""
    return plan_tasks(distances, n_train, PlanSettings.from_schema(**settings), seed=seed)



def disagreement(n_matrices: int, n_tasks: int, max_kl: float, seed: int) -> tuple[float, float]:
    """(share of matrices with different plans, share of tasks 2..N with a different decision)."""
    rng = np.random.default_rng(seed)
    plans_differ = tasks_differ = 0
    for _ in range(n_matrices):
        d = rng.uniform(0.0, max_kl, size=(n_tasks, n_tasks))
        sizes = [4500] * n_tasks   # CIFAR100-10: 450 train images x 10 classes
        a = [x.job_params() for x in make_plan(d, sizes, relatedness_map="per_pair")]
        b = [x.job_params() for x in make_plan(d, sizes, relatedness_map="per_group")]
        plans_differ += a != b
        tasks_differ += sum(x != y for x, y in zip(a[1:], b[1:]))
    return plans_differ / n_matrices, tasks_differ / (n_matrices * (n_tasks - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrices", type=int, default=10000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--max-kl", type=float, default=2.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    plans, tasks = disagreement(args.matrices, args.tasks, args.max_kl, args.seed)
    print(f"{args.matrices} random {args.tasks}-task matrices, KL uniform in [0, {args.max_kl}], "
          f"alpha 0.5, beta 0.75:")
    print(f"plans that differ between per_pair and per_group: {plans:.1%}")
    print(f"task decisions that differ (tasks 2..{args.tasks}):  {tasks:.1%}")


if __name__ == "__main__":
    main()
