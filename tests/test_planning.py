"""Plan decisions (Eq. 5-6, SPEC §3) at the alpha/beta boundaries and special rules."""
import math

import numpy as np
import pytest

from par.planning import (ALLOCATE_REUSE, ALLOCATE_SEARCH, REGULARIZE, REGULARIZE_HEAD, TaskDecision, plan_tasks,
                          relatedness_score)


def test_relatedness_score_values():
    assert relatedness_score(0.0) == 0.0
    assert relatedness_score(0.5) == 0.5                      # 1 - e^-1 = 0.632 > 0.5
    assert relatedness_score(1.0) == pytest.approx(1 - math.exp(-2))
    assert relatedness_score(10.0) == pytest.approx(1 - math.exp(-20))
    # monotone and below 1
    values = [relatedness_score(x) for x in np.linspace(0, 20, 200)]
    assert all(b >= a for a, b in zip(values, values[1:])) and values[-1] <= 1.0


def two_tasks(distance, **kw):
    d = np.zeros((2, 2))
    d[1, 0] = distance
    return plan_tasks(d, [1000, 1000], **kw)


def test_first_task_searches():
    first = two_tasks(0.0)[0]
    assert (first.group, first.strategy, first.predecessor, first.genotype_source) == (1, ALLOCATE_SEARCH, None, 1)


@pytest.mark.parametrize("distance, strategy, group", [
    (0.5, REGULARIZE, 1),                 # s == alpha: join
    (0.5 + 1e-9, ALLOCATE_REUSE, 2),      # just above alpha: new expert, reused cell
    (0.75, ALLOCATE_REUSE, 2),            # s = min(0.75, 1 - e^-1.5 = 0.777) == beta
    (0.75 + 1e-9, ALLOCATE_SEARCH, 2),    # just above beta: search
])
def test_alpha_beta_boundaries(distance, strategy, group):
    second = two_tasks(distance, alpha=0.5, beta=0.75)[1]
    assert second.strategy == strategy and second.group == group
    assert second.score == pytest.approx(distance)


def test_reuse_takes_the_cell_of_the_nearest_group_and_search_its_own():
    assert two_tasks(0.6)[1].genotype_source == 1
    assert two_tasks(0.6)[1].searches_cell is False
    assert two_tasks(0.9)[1].genotype_source == 2
    assert two_tasks(0.9)[1].searches_cell is True


def test_joining_task_chains_on_the_group():
    d = np.zeros((3, 3))
    decisions = plan_tasks(d, [100, 100, 100])
    assert [x.predecessor for x in decisions] == [None, 1, 2]
    assert decisions[2].group_tasks == [1, 2, 3]
    assert decisions[2].job_params() == {"task": 3, "group": 1, "strategy": REGULARIZE, "predecessor": 2,
                                         "group_tasks": [1, 2, 3], "genotype_source": None}


@pytest.mark.parametrize("n_new, strategy", [(499, REGULARIZE_HEAD), (500, REGULARIZE)])
def test_head_only_when_much_smaller_than_the_group(n_new, strategy):
    d = np.zeros((2, 2))
    assert plan_tasks(d, [1000, n_new], head_only_ratio=0.5)[1].strategy == strategy


def test_largest_training_set_of_group_is_tracked():
    d = np.zeros((3, 3))
    # Q grows to 4000 with task 2, so task 3 (1500 < 0.5 * 4000) trains only its head.
    decisions = plan_tasks(d, [1000, 4000, 1500], head_only_ratio=0.5)
    assert [x.strategy for x in decisions[1:]] == [REGULARIZE, REGULARIZE_HEAD]


def test_group_distance_mean_min_max():
    d = np.zeros((4, 4))
    d[1, 0] = 2.0           # task 2 founds group 2 (s = 0.98 > beta)
    d[2, 0], d[2, 1] = 0.0, 2.0  # task 3 joins group 1
    d[3, 0], d[3, 1], d[3, 2] = 0.2, 0.3, 0.6   # task 4: group 1 = {1, 3}, group 2 = {2}
    mean = plan_tasks(d, [10 ** 3] * 4, tiny_task_rule=False)[3]
    assert mean.group_scores[1] == pytest.approx(0.4) and mean.group_scores[2] == pytest.approx(0.3)
    assert mean.group == 2
    low = plan_tasks(d, [10 ** 3] * 4, group_distance="min")[3]
    assert low.group_scores[1] == pytest.approx(0.2) and low.group == 1
    high = plan_tasks(d, [10 ** 3] * 4, group_distance="max")[3]
    assert high.group_scores[1] == pytest.approx(0.6) and high.group == 2


def test_ties_go_to_the_lowest_group():
    d = np.zeros((3, 3))
    d[1, 0] = 2.0
    d[2, 0] = d[2, 1] = 0.3
    assert plan_tasks(d, [100] * 3)[2].group == 1


def test_reused_cell_traces_back_to_the_search():
    d = np.full((3, 3), 0.6)   # every s = 0.6: alpha < s <= beta
    decisions = plan_tasks(d, [100] * 3)
    assert [x.strategy for x in decisions] == [ALLOCATE_SEARCH, ALLOCATE_REUSE, ALLOCATE_REUSE]
    assert [x.genotype_source for x in decisions] == [1, 1, 1]


def test_tiny_task_joins_a_group_ten_times_larger():
    d = np.full((2, 2), 5.0)   # far: would search without the rule
    with_rule = plan_tasks(d, [1000, 20])[1]
    assert (with_rule.group, with_rule.strategy) == (1, REGULARIZE_HEAD)
    without = plan_tasks(d, [1000, 20], tiny_task_rule=False)[1]
    assert without.strategy == ALLOCATE_SEARCH
    too_small_group = plan_tasks(d, [100, 20])[1]    # Q = 100 < 10 * 20
    assert too_small_group.strategy == ALLOCATE_SEARCH


def test_fixed_darts_cell_needs_no_search():
    decisions = plan_tasks(np.full((2, 2), 5.0), [100, 100], cell_search="darts_v2")
    assert [x.genotype_source for x in decisions] == ["darts_v2", "darts_v2"]
    assert not any(x.searches_cell for x in decisions)


def test_json_roundtrip():
    decision = two_tasks(0.3)[1]
    assert TaskDecision.from_json(decision.to_json()) == decision


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        plan_tasks(np.zeros((2, 3)), [1, 2])
    with pytest.raises(ValueError, match="group_distance"):
        plan_tasks(np.zeros((2, 2)), [1, 2], group_distance="median")
