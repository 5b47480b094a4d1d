"""Plan decisions (Eq. 5-6, SPEC §3) at the alpha/beta boundaries and special rules."""
import math

import numpy as np
import pytest

from par.planning import (ALLOCATE_REUSE, PlanSettings, ALLOCATE_SEARCH, REGULARIZE, REGULARIZE_HEAD, TaskDecision,
                          coarse_probabilities, group_score, plan_tasks, relatedness_score)

def make_plan(distances, n_train, *, seed=0, **settings):
    """plan_tasks with the config schema's planning settings, ``settings`` overriding some."""
    return plan_tasks(distances, n_train, PlanSettings.from_schema(**settings), seed=seed)



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
    return make_plan(d, [1000, 1000], **kw)


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
    decisions = make_plan(d, [100, 100, 100])
    assert [x.predecessor for x in decisions] == [None, 1, 2]
    assert decisions[2].group_tasks == [1, 2, 3]
    assert decisions[2].job_params() == {"task": 3, "group": 1, "strategy": REGULARIZE, "predecessor": 2,
                                         "group_tasks": [1, 2, 3], "genotype_source": None}


@pytest.mark.parametrize("n_new, strategy", [(499, REGULARIZE_HEAD), (500, REGULARIZE)])
def test_head_only_when_much_smaller_than_the_group(n_new, strategy):
    d = np.zeros((2, 2))
    assert make_plan(d, [1000, n_new], head_only_ratio=0.5)[1].strategy == strategy


def test_largest_training_set_of_group_is_tracked():
    d = np.zeros((3, 3))
    # Q grows to 4000 with task 2, so task 3 (1500 < 0.5 * 4000) trains only its head.
    decisions = make_plan(d, [1000, 4000, 1500], head_only_ratio=0.5)
    assert [x.strategy for x in decisions[1:]] == [REGULARIZE, REGULARIZE_HEAD]


def test_group_distance_mean_min_max():
    d = np.zeros((4, 4))
    d[1, 0] = 2.0           # task 2 founds group 2 (s = 0.98 > beta)
    d[2, 0], d[2, 1] = 0.0, 2.0  # task 3 joins group 1
    d[3, 0], d[3, 1], d[3, 2] = 0.2, 0.3, 0.6   # task 4: group 1 = {1, 3}, group 2 = {2}
    mean = make_plan(d, [10 ** 3] * 4, tiny_task_rule=False)[3]
    assert mean.group_scores[1] == pytest.approx(0.4) and mean.group_scores[2] == pytest.approx(0.3)
    assert mean.group == 2
    low = make_plan(d, [10 ** 3] * 4, group_distance="min")[3]
    assert low.group_scores[1] == pytest.approx(0.2) and low.group == 1
    high = make_plan(d, [10 ** 3] * 4, group_distance="max")[3]
    assert high.group_scores[1] == pytest.approx(0.6) and high.group == 2


def test_ties_go_to_the_lowest_group():
    d = np.zeros((3, 3))
    d[1, 0] = 2.0
    d[2, 0] = d[2, 1] = 0.3
    assert make_plan(d, [100] * 3)[2].group == 1


def test_reused_cell_traces_back_to_the_search():
    d = np.full((3, 3), 0.6)   # every s = 0.6: alpha < s <= beta
    decisions = make_plan(d, [100] * 3)
    assert [x.strategy for x in decisions] == [ALLOCATE_SEARCH, ALLOCATE_REUSE, ALLOCATE_REUSE]
    assert [x.genotype_source for x in decisions] == [1, 1, 1]


def test_tiny_task_joins_a_group_ten_times_larger():
    d = np.full((2, 2), 5.0)   # far: would search without the rule
    with_rule = make_plan(d, [1000, 20])[1]
    assert (with_rule.group, with_rule.strategy) == (1, REGULARIZE_HEAD)
    without = make_plan(d, [1000, 20], tiny_task_rule=False)[1]
    assert without.strategy == ALLOCATE_SEARCH
    too_small_group = make_plan(d, [100, 20])[1]    # Q = 100 < 10 * 20
    assert too_small_group.strategy == ALLOCATE_SEARCH
    # the bounds are inclusive (authors' code): n_train = 25 is tiny, Q = 10 * n is large enough
    at_the_bounds = make_plan(d, [250, 25])[1]
    assert (at_the_bounds.group, at_the_bounds.strategy) == (1, REGULARIZE_HEAD)
    assert at_the_bounds.reason.startswith("tiny task")
    assert make_plan(d, [260, 26])[1].strategy == ALLOCATE_SEARCH   # 26 is not tiny


def test_fixed_darts_cell_needs_no_search():
    decisions = make_plan(np.full((2, 2), 5.0), [100, 100], cell_search="darts_v2")
    assert [x.genotype_source for x in decisions] == ["darts_v2", "darts_v2"]
    assert not any(x.searches_cell for x in decisions)


def test_json_roundtrip():
    decision = two_tasks(0.3)[1]
    assert TaskDecision.from_json(decision.to_json()) == decision


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        make_plan(np.zeros((2, 3)), [1, 2])
    with pytest.raises(ValueError, match="group_distance"):
        make_plan(np.zeros((2, 2)), [1, 2], group_distance="median")


def eq6(x):
    """Eq. 6 by hand."""
    return min(x, 1 - math.exp(-2 * x))


def group_of_two_then(kl_to_1, kl_to_2, **kw):
    """Tasks 1 and 2 form group 1 (KL 0: task 2 joins); task 3 has the given distances."""
    d = np.zeros((3, 3))
    d[2, 0], d[2, 1] = kl_to_1, kl_to_2
    return make_plan(d, [1000] * 3, **kw)[2]


def test_authors_map_each_pair_before_averaging():
    # Pairs 0.0 and 1.2: per pair (0 + 0.9093) / 2 = 0.4546 <= alpha -> join;
    # the paper's order maps the mean 0.6 -> min(0.6, 0.6988) = 0.6 -> new expert.
    per_pair = group_of_two_then(0.0, 1.2)
    assert per_pair.score == pytest.approx((0.0 + (1 - math.exp(-2.4))) / 2)
    assert (per_pair.group, per_pair.strategy) == (1, REGULARIZE)
    per_group = group_of_two_then(0.0, 1.2, relatedness_map="per_group")
    assert per_group.score == pytest.approx(0.6)
    assert (per_group.group, per_group.strategy) == (2, ALLOCATE_REUSE)
    # Pairs 0.2 and 1.4: per pair (0.2 + 0.9392) / 2 = 0.5696 reuses the cell;
    # per group eq6(0.8) = 0.7981 > beta searches.
    assert group_of_two_then(0.2, 1.4).score == pytest.approx((0.2 + 1 - math.exp(-2.8)) / 2)
    assert group_of_two_then(0.2, 1.4).strategy == ALLOCATE_REUSE
    assert group_of_two_then(0.2, 1.4, relatedness_map="per_group").score == pytest.approx(eq6(0.8))
    assert group_of_two_then(0.2, 1.4, relatedness_map="per_group").strategy == ALLOCATE_SEARCH


def test_zero_is_far_after_eq6_per_pair_before_it_per_group():
    # Authors: Eq. 6 first, then 0 -> 1; so an identical task is at s = 1 exactly.
    assert group_score(np.array([0.0]), zero_is_far=True) == 1.0
    assert group_score(np.array([0.0, 0.4]), zero_is_far=True) == pytest.approx((1.0 + 0.4) / 2)
    # Paper order: the raw 0 becomes 1, then the mean is mapped by Eq. 6.
    assert group_score(np.array([0.0]), relatedness_map="per_group", zero_is_far=True) == pytest.approx(eq6(1.0))
    assert group_score(np.array([0.0, 0.4]), relatedness_map="per_group", zero_is_far=True) == pytest.approx(eq6(0.7))
    assert group_score(np.array([0.0, 0.4])) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="relatedness_map"):
        group_score(np.array([0.1]), relatedness_map="paper")
    with pytest.raises(ValueError, match="coarse_search"):
        make_plan(np.zeros((2, 2)), [1, 2], coarse_search="anneal")


def test_coarse_probabilities_by_hand():
    p = coarse_probabilities([0.6, 0.7], beta=0.75, temperature=0.1)
    w = [math.exp(-6), math.exp(-7), math.exp(-7.5)]
    assert p == pytest.approx([x / sum(w) for x in w])
    with pytest.raises(ValueError, match="temperature"):
        coarse_probabilities([0.6], 0.75, 0.0)


def test_sampled_coarse_search_is_seeded_and_follows_its_distribution():
    d = np.zeros((2, 2))
    d[1, 0] = 0.7     # s = 0.7: alpha < s; candidates: the cell of task 1 and the unknown cell
    plans = [make_plan(d, [1000, 1000], coarse_search="sample", seed=seed)[1] for seed in range(2000)]
    again = [make_plan(d, [1000, 1000], coarse_search="sample", seed=seed)[1] for seed in range(20)]
    assert again == plans[:20]
    p_reuse = math.exp(-7) / (math.exp(-7) + math.exp(-7.5))    # = 0.6225
    assert plans[0].coarse_probabilities == pytest.approx({"1": p_reuse, "unknown": 1 - p_reuse})
    reused = [x for x in plans if x.strategy == ALLOCATE_REUSE]
    assert all(x.genotype_source == 1 and x.group == 2 for x in reused)
    assert all(x.genotype_source == 2 and x.searches_cell for x in plans if x.strategy == ALLOCATE_SEARCH)
    # 2000 draws: standard error 0.011
    assert len(reused) / len(plans) == pytest.approx(p_reuse, abs=0.035)


def test_sampled_coarse_search_scores_a_shared_cell_by_its_nearest_group():
    # Tasks 1, 2 form group 1 (cell 1).  Task 3 (s = 0.6) founds group 2 with cell 1 or
    # its own cell 3, by draw.  Task 4 is at s = 0.62 from group 1 and 0.7 from group 2.
    d = np.zeros((4, 4))
    d[2, :2] = 0.6
    d[3, :3] = [0.62, 0.62, 0.7]
    seen = set()
    for seed in range(40):
        plan = make_plan(d, [1000] * 4, coarse_search="sample", seed=seed)
        probs = plan[3].coarse_probabilities
        if plan[2].genotype_source == 1:     # both groups use cell 1: one candidate, s = min(0.62, 0.7)
            w = {"1": math.exp(-6.2), "unknown": math.exp(-7.5)}
        else:                                # cell 1 (group 1, s = 0.62), cell 3 (group 2, s = 0.7)
            w = {"1": math.exp(-6.2), "3": math.exp(-7.0), "unknown": math.exp(-7.5)}
        assert probs == pytest.approx({c: x / sum(w.values()) for c, x in w.items()})
        seen.add(plan[2].genotype_source)
    assert seen == {1, 3}


def test_sampled_coarse_search_at_low_temperature_is_the_threshold_rule():
    rng = np.random.default_rng(0)
    for _ in range(50):
        d = rng.uniform(0, 1.2, size=(8, 8))
        threshold = make_plan(d, [1000] * 8)
        sampled = make_plan(d, [1000] * 8, coarse_search="sample", coarse_temperature=1e-4, seed=3)
        assert [x.job_params() for x in sampled] == [x.job_params() for x in threshold]


def test_joining_a_later_group_among_several():
    """Task 4 joins group 2 of three (mutation testing: every join so far was into group 1)."""
    d = np.full((5, 5), 5.0)          # far from everything ...
    d[3, 1] = 0.01                    # ... but task 4 is near task 2 (group 2)
    d[4, 1] = d[4, 3] = 0.0           # task 5 equals tasks 2 and 4
    plan = make_plan(d, [100, 300, 100, 100, 200])
    assert [(x.task, x.group, x.strategy) for x in plan] == [
        (1, 1, ALLOCATE_SEARCH), (2, 2, ALLOCATE_SEARCH), (3, 3, ALLOCATE_SEARCH),
        (4, 2, REGULARIZE_HEAD),      # 100 < 0.5 · Q = 0.5 · 300
        (5, 2, REGULARIZE)]           # 200 >= 0.5 · 300
    assert (plan[3].predecessor, plan[3].group_tasks, plan[3].n_train) == (2, [2, 4], 100)
    assert (plan[4].predecessor, plan[4].group_tasks) == (4, [2, 4, 5])
    # the authors' quirk: a distance of exactly 0 counts as the farthest (s = 1 > beta)
    far = make_plan(d, [100, 300, 100, 100, 200], zero_is_far=True)[4]
    assert (far.group, far.strategy, far.nearest_group) == (4, ALLOCATE_SEARCH, 1)
    assert far.score == pytest.approx(1 - math.exp(-10))   # group 2 maps to 1; group 1 is at 5


def test_group_score_and_settings_reject_unknown_options():
    with pytest.raises(ValueError, match="group_distance must be one of"):
        group_score(np.array([0.1]), group_distance="median")
    with pytest.raises(ValueError, match="relatedness_map must be one of"):
        PlanSettings.from_schema(relatedness_map="paper")


def test_group_score_combines_in_float64():
    # float32 estimates (exact: 1/4, 1/2, 1/8) are averaged in float64: s' = 0.875 / 3, and
    # Eq. 6 keeps it (1 - e^-0.583 = 0.44 > s').  A float32 mean would be off by 1e-8.
    kl = np.array([0.25, 0.5, 0.125], dtype=np.float32)
    assert group_score(kl, relatedness_map="per_group") == pytest.approx(0.875 / 3, rel=1e-13, abs=0)


def test_json_without_group_scores():
    """A plan entry with no ``group_scores`` (task 1 of an older plan.json) reads as none."""
    first = two_tasks(0.3)[0]
    d = first.to_json()
    del d["group_scores"]
    assert TaskDecision.from_json(d) == first and first.group_scores == {}


def test_no_tasks_no_plan():
    assert make_plan(np.zeros((0, 0)), []) == []


def test_allocating_decisions_record_their_training_set_size():
    plan = make_plan(np.full((3, 3), 5.0), [1000, 700, 300])
    assert [(x.strategy, x.n_train) for x in plan] == [(ALLOCATE_SEARCH, 1000), (ALLOCATE_SEARCH, 700),
                                                      (ALLOCATE_SEARCH, 300)]


def test_largest_training_set_of_a_later_group_is_tracked():
    """Q of group 2 (not group 1) grows when a larger task joins it, and only it does."""
    d = np.full((5, 5), 5.0)
    d[2, 1] = d[3, 1] = d[3, 2] = d[4, 1] = d[4, 2] = d[4, 3] = 0.0   # tasks 3, 4, 5 equal task 2
    plan = make_plan(d, [1000, 100, 300, 200, 120], head_only_ratio=0.5)
    assert [(x.task, x.group, x.strategy) for x in plan] == [
        (1, 1, ALLOCATE_SEARCH), (2, 2, ALLOCATE_SEARCH),
        (3, 2, REGULARIZE),           # 300 >= 0.5 · 100; Q of group 2 becomes 300 (group 1 keeps 1000)
        (4, 2, REGULARIZE),           # 200 >= 0.5 · 300
        (5, 2, REGULARIZE_HEAD)]      # 120 < 0.5 · 300


def test_tiny_task_joins_the_nearest_large_enough_group():
    # Groups 1 (Q = 1000) and 2 (Q = 100); task 3 (20 images) is far from both: only group 1
    # is ten times larger.
    d = np.full((3, 3), 5.0)
    d[2, 1] = 3.0
    only_first = make_plan(d, [1000, 100, 20])[2]
    assert (only_first.task, only_first.group, only_first.strategy) == (3, 1, REGULARIZE_HEAD)
    # Both groups large enough: the nearer one, group 2 (s = 1 - e^-6 < 1 - e^-10), although its id is higher.
    nearest = make_plan(d, [1000, 1000, 20])[2]
    assert (nearest.task, nearest.group, nearest.strategy, nearest.predecessor, nearest.group_tasks) == (
        3, 2, REGULARIZE_HEAD, 2, [2, 3])
    assert nearest.n_train == 20 and nearest.nearest_group == 2
    assert nearest.score == pytest.approx(eq6(3.0))
    assert nearest.group_scores == pytest.approx({1: eq6(5.0), 2: eq6(3.0)})


def test_every_decision_says_why():
    """Each branch of the plan fills ``reason`` (a string shown in the plan table and log)."""
    d = np.zeros((2, 2))
    d[1, 0] = 0.7
    sampled = {x.strategy: x for x in (make_plan(d, [1000, 1000], coarse_search="sample", seed=s)[1]
                                       for s in range(20))}
    assert set(sampled) == {ALLOCATE_REUSE, ALLOCATE_SEARCH}
    decisions = [
        two_tasks(0.3)[0],                                   # first task
        two_tasks(0.3)[1],                                   # s <= alpha: join
        two_tasks(0.6)[1],                                   # alpha < s <= beta: reuse
        two_tasks(0.6, regularize=False)[1],                 # reuse, regularization off
        two_tasks(0.6, reuse_cells=False)[1],                # search: cell reuse off
        two_tasks(0.9)[1],                                   # s > beta: search
        make_plan(np.full((2, 2), 5.0), [1000, 20])[1],      # tiny task
        *sampled.values(),                                   # sampled coarse level, both outcomes
    ]
    assert [x.strategy for x in decisions] == [ALLOCATE_SEARCH, REGULARIZE, ALLOCATE_REUSE, ALLOCATE_REUSE,
                                               ALLOCATE_SEARCH, ALLOCATE_SEARCH, REGULARIZE_HEAD,
                                               *sampled]
    assert all(isinstance(x.reason, str) and x.reason for x in decisions), [x.reason for x in decisions]


def test_reasons_state_the_rule_that_decided():
    assert "> beta" in two_tasks(0.9)[1].reason
    # s = beta exactly with cell reuse off: searched because reuse is off, not because s > beta
    off = two_tasks(0.75, alpha=0.5, beta=0.75, reuse_cells=False)[1]
    assert off.strategy == ALLOCATE_SEARCH and "cell reuse off" in off.reason and "> beta" not in off.reason
    assert "(regularization off)" in two_tasks(0.6, regularize=False)[1].reason
    assert "regularization off" not in two_tasks(0.6)[1].reason


def test_settings_from_a_run_config():
    from par.infra.config import schema_defaults

    settings = PlanSettings.from_config(schema_defaults("planning"), zero_is_far=True)
    assert settings == PlanSettings.from_schema(zero_is_far=True) and settings.zero_is_far is True
