"""MDL search: votes, distribution update, genotype derivation (SPEC §4)."""
import math
import time

import pytest
import torch

from par.cells import N_EDGES, PRIMITIVES, Genotype
from par.mdl import EdgeDistributions, SearchConfig, derive_cell, mdl_votes, search_cell, search_halves

# One edge, three operations: op 0 sampled twice (last acc 0.5), op 1 once (0.7), op 2 never.
H_E = torch.tensor([[2, 1, 0]])
H_A = torch.tensor([[0.5, 0.7, 0.0]], dtype=torch.float64)


def test_votes_by_hand():
    # op 0: sampled more than op 1 but scored lower -> v2 = 1.  op 1: the reverse -> v1 = 1.
    # op 2: sampled less than both but scored lower than both -> no vote.
    assert mdl_votes(H_E, H_A).tolist() == [[-1.0, 1.0, 0.0]]


def test_probs_update_is_softmax_of_shifted_probabilities():
    d = EdgeDistributions(torch.full((1, 3), 1 / 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                          H_E.clone(), H_A.clone())
    d.update(0.01, "probs")
    z = [math.exp(1 / 3 - 0.01), math.exp(1 / 3 + 0.01), math.exp(1 / 3)]
    expected = [v / sum(z) for v in z]
    assert d.p[0].tolist() == pytest.approx(expected, abs=1e-12)
    assert d.p[0].tolist() == pytest.approx([0.330006, 0.336672, 0.333322], abs=1e-6)


def test_logits_update_accumulates_and_moves_faster():
    probs = EdgeDistributions(torch.full((1, 3), 1 / 3, dtype=torch.float64),
                              torch.zeros(1, 3, dtype=torch.float64), H_E.clone(), H_A.clone())
    logits = EdgeDistributions(probs.p.clone(), probs.logits.clone(), H_E.clone(), H_A.clone())
    for _ in range(50):
        probs.update(0.1, "probs")
        logits.update(0.1, "logits")
    assert logits.logits[0].tolist() == pytest.approx([-5.0, 5.0, 0.0])
    assert logits.p[0, 1] == pytest.approx(math.exp(5) / (math.exp(5) + math.exp(-5) + 1))
    assert probs.p[0, 1] < 0.45 < logits.p[0, 1]   # the code's update barely moves p
    with pytest.raises(ValueError, match="mdl_update"):
        probs.update(0.1, "bogus")


def test_record_counts_and_last_accuracy():
    d = EdgeDistributions.uniform(n_edges=2, n_ops=3)
    d.record(torch.tensor([1, 2]), 0.4)
    d.record(torch.tensor([1, 0]), 0.6)
    assert d.h_e.tolist() == [[0, 2, 0], [1, 0, 1]]
    assert d.h_a.tolist() == [[0.0, 0.6, 0.0], [0.6, 0.0, 0.4]]


def test_sampling_follows_p():
    d = EdgeDistributions.uniform(n_edges=1, n_ops=3)
    d.p = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    assert d.sample(torch.Generator().manual_seed(0)).tolist() == [2]


def make_p(best):
    """p (14, 6) where edge e's best non-none op is best[e] = (op index, prob); none gets 0.9."""
    p = torch.full((N_EDGES, len(PRIMITIVES)), 0.01, dtype=torch.float64)
    p[:, 0] = 0.9   # 'none' is never chosen, however likely
    for e, (op, prob) in enumerate(best):
        p[e, op] = prob
    return p


def test_derive_cell_top2_edges_per_node_without_none():
    sep, dil, skip, avg, mx = (PRIMITIVES.index(n) for n in
                               ("sep_conv_3x3", "dil_conv_3x3", "skip_connect", "avg_pool_3x3", "max_pool_3x3"))
    best = [(sep, .5), (mx, .4),                     # node 2: inputs 0, 1
            (skip, .3), (dil, .6), (avg, .45),       # node 3: keep inputs 1, 2
            (sep, .2), (sep, .2), (mx, .7), (dil, .1),            # node 4: keep 2, then tie 0/1 -> 0
            (avg, .1), (avg, .1), (avg, .1), (avg, .1), (skip, .2)]  # node 5: keep 4, tie -> 0
    cell = derive_cell(make_p(best))
    assert cell == (("sep_conv_3x3", 0), ("max_pool_3x3", 1),
                    ("dil_conv_3x3", 1), ("avg_pool_3x3", 2),
                    ("sep_conv_3x3", 0), ("max_pool_3x3", 2),
                    ("avg_pool_3x3", 0), ("skip_connect", 4))
    Genotype(normal=cell, reduce=cell)   # a valid genotype


def test_search_on_real_images_gives_a_valid_genotype(cifar10_arrays):
    images = torch.from_numpy(cifar10_arrays.train_images[:80])
    labels = torch.from_numpy(cifar10_arrays.train_labels[:80] % 2)
    config = SearchConfig(sample_epochs=2, channels=4, n_layers=3, batch_size=16)
    called = time.perf_counter()
    result = search_cell(images, labels, 2, (0.5,) * 3, (0.25,) * 3, config, torch.device("cpu"), seed=0)
    call_seconds = time.perf_counter() - called
    # The search times itself (the workflow's T), so a wait for a GPU slot before the call is not counted.
    assert sum(h["seconds"] for h in result.history) <= result.seconds <= call_seconds
    again = search_cell(images, labels, 2, (0.5,) * 3, (0.25,) * 3, config, torch.device("cpu"), seed=0)
    assert again.history[-1]["p"] == result.history[-1]["p"]   # same seed, same search
    assert isinstance(result.genotype, Genotype)
    assert len(result.history) == 2
    last = torch.tensor(result.history[-1]["p"]["normal"])
    assert last.shape == (N_EDGES, len(PRIMITIVES))
    torch.testing.assert_close(last.sum(1), torch.ones(N_EDGES, dtype=last.dtype))
    assert all(0.0 <= h["val_accuracy"] <= 1.0 for h in result.history)


@pytest.mark.parametrize("augment", [True, False])
def test_both_search_halves_get_the_training_augmentation(augment):
    # Authors' mdenas_search.py: both halves sample the training set with its transforms.
    n = 13                                    # 6 search-train (batches 4 + 2), 7 search-val
    images = torch.full((n, 8, 8, 3), 200, dtype=torch.uint8)
    labels = torch.arange(n)                  # labels name the images
    config = SearchConfig(batch_size=4, augment=augment)
    fit, val = search_halves(images, labels, (0.5,) * 3, (0.25,) * 3, config, torch.device("cpu"),
                             torch.Generator().manual_seed(0))
    fit_ids = torch.cat([y for _, y in fit]).tolist()
    val_x, val_y = next(iter(val))
    assert len(fit_ids) == n // 2 and len(val_y) == n - n // 2           # ⌊n/2⌋ search-train, rest search-val
    assert sorted(fit_ids + val_y.tolist()) == list(range(n))
    plain = (200 / 255 - 0.5) / 0.25
    padding = (0 - 0.5) / 0.25                # zero padding of the random crop, normalised
    if augment:   # a crop offset other than (4, 4) shows padding; the jitter moves the other pixels
        assert (val_x == padding).any() and not torch.isclose(val_x, torch.tensor(plain)).all()
    else:
        torch.testing.assert_close(val_x, torch.full_like(val_x, plain))


def test_search_updates_the_distributions_as_mdl_says(cifar10_arrays):
    """Replays the history's samples and search-val accuracies through the MDL update by hand:
    the distributions the search reports (and its genotype) must be those."""
    from par.mdl import CELL_TYPES, derive_genotype

    images = torch.from_numpy(cifar10_arrays.train_images[:64])
    labels = torch.from_numpy(cifar10_arrays.train_labels[:64] % 2)
    config = SearchConfig(sample_epochs=3, channels=4, n_layers=3, batch_size=16, lr_search=0.5)
    result = search_cell(images, labels, 2, (0.5,) * 3, (0.25,) * 3, config, torch.device("cpu"), seed=1)
    accuracies = [h["val_accuracy"] for h in result.history]
    assert len(set(accuracies)) > 1, accuracies   # else no vote moves p: pick another seed
    replay = {kind: EdgeDistributions.uniform() for kind in CELL_TYPES}
    for row in result.history:
        for kind in CELL_TYPES:
            ops = torch.tensor([PRIMITIVES.index(op) for op in row["sampled"][kind]])
            replay[kind].record(ops, row["val_accuracy"])
            replay[kind].update(config.lr_search, config.mdl_update)
            assert row["p"][kind] == replay[kind].p.tolist()
    uniform = EdgeDistributions.uniform().p.tolist()
    assert result.history[-1]["p"]["normal"] != uniform or result.history[-1]["p"]["reduce"] != uniform
    assert result.genotype == derive_genotype(replay["normal"].p, replay["reduce"].p)
