"""MDL search: votes, distribution update, genotype derivation (SPEC §4)."""
import math
import time
import warnings

import pytest
import torch
from torch import nn

from par.nets.genotypes import N_EDGES, PRIMITIVES, Genotype
from par.search.mdl import EdgeDistributions, SearchConfig, derive_cell, mdl_votes, search_cell, search_halves
from par.training import TrainConfig

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
    from par.search.mdl import CELL_TYPES, derive_genotype

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



# ---- what tools/mutation/mdl.diff showed no test pinned down -----------------

CPU, META = torch.device("cpu"), torch.device("meta")   # meta: a device other than the CPU, without data


def test_votes_need_strictly_more_samples_and_strictly_lower_accuracy():
    # (count, last accuracy): op 0 (1, 0.5), op 1 (1, 0.7), op 2 (2, 0.5).  Only ops 1 and 2 differ in
    # both: op 1 was sampled less and scored higher (v1[1] = 1, v2[2] = 1).  Equal counts (ops 0, 1)
    # or equal accuracies (ops 0, 2) give no vote.
    h_a = torch.tensor([[0.5, 0.7, 0.5]], dtype=torch.float64)
    assert mdl_votes(torch.tensor([[1, 1, 2]]), h_a).tolist() == [[0.0, 1.0, -1.0]]


def test_uniform_state():
    d = EdgeDistributions.uniform(n_edges=2, n_ops=4)
    assert d.p.tolist() == [[0.25] * 4] * 2
    assert d.logits.tolist() == d.h_a.tolist() == [[0.0] * 4] * 2 and d.h_e.tolist() == [[0] * 4] * 2
    assert (d.p.dtype, d.logits.dtype, d.h_e.dtype, d.h_a.dtype) == (torch.float64,) * 2 + (torch.long, torch.float64)
    assert EdgeDistributions.uniform().p.shape == (N_EDGES, len(PRIMITIVES))


def test_update_defaults_to_probs_and_warns_of_nothing():
    def state():
        return EdgeDistributions(torch.full((1, 3), 1 / 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                                 H_E.clone(), H_A.clone())

    default, probs, logits = state(), state(), state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # e.g. softmax's deprecated implicit dimension
        default.update(0.01)
        probs.update(0.01, "probs")
        logits.update(0.01, "logits")
    assert torch.equal(default.p, probs.p) and torch.equal(default.logits, torch.zeros(1, 3, dtype=torch.float64))


def test_sampling_draws_from_the_generator_alone():
    d = EdgeDistributions.uniform()

    def draw(global_seed):
        with torch.random.fork_rng():
            torch.manual_seed(global_seed)
            return d.sample(torch.Generator().manual_seed(3))

    assert torch.equal(draw(0), draw(1))


def test_train_config_carries_every_search_hyperparameter():
    config = SearchConfig(sample_epochs=3, lr=0.2, lr_min=0.01, momentum=0.5, weight_decay=0.004, batch_size=7,
                          grad_clip=2.5, augment=False, crop_padding=2, brightness=0.1, eval_batch_size=9)
    assert config.train_config() == TrainConfig(epochs=3, lr=0.2, lr_min=0.01, momentum=0.5, weight_decay=0.004,
                                                batch_size=7, grad_clip=2.5, patience=None, augment=False,
                                                crop_padding=2, brightness=0.1, eval_batch_size=9)


def test_search_halves_augment_as_the_search_config_says_on_its_device():
    # crop padding 0 and brightness 0: the augmentation changes no pixel of a constant image
    images = torch.full((8, 4, 4, 3), 200, dtype=torch.uint8)
    config = SearchConfig(batch_size=2, eval_batch_size=4, augment=True, crop_padding=0, brightness=0.0)
    fit, val = search_halves(images, torch.arange(8), (0.5,) * 3, (0.25,) * 3, config, CPU,
                             torch.Generator().manual_seed(0))
    batches = [*fit, *val]
    assert [len(y) for _, y in batches] == [2, 2, 4]
    plain = (200 / 255 - 0.5) / 0.25
    for x, _ in batches:
        torch.testing.assert_close(x, torch.full_like(x, plain))
    on_meta = search_halves(images, torch.arange(8), (0.5,) * 3, (0.25,) * 3, config, META, torch.Generator())
    assert all(b.images.device == META and b.labels.device == META for b in on_meta)


def test_hooks_apply_the_configured_update_to_both_cells():
    from par.search.mdl import CELL_TYPES, MDLSearchHooks, _Sampled

    hooks = MDLSearchHooks(SearchConfig(lr_search=0.5, mdl_update="logits"), torch.Generator().manual_seed(0))
    model = _Sampled(nn.Identity())
    assert hooks.ops == {} and (model.normal, model.reduce) == ([], [])    # nothing sampled yet
    replay = {mode: {kind: EdgeDistributions.uniform() for kind in CELL_TYPES} for mode in ("logits", "probs")}
    for epoch, accuracy in enumerate([0.2, 0.6, 0.4, 0.1, 0.9, 0.3, 0.5, 0.7]):
        hooks.before_epoch(model, 0, epoch, 1)
        assert (model.normal, model.reduce) == (hooks.ops["normal"].tolist(), hooks.ops["reduce"].tolist())
        record = {"val_accuracy": accuracy}
        hooks.after_epoch(model, 0, epoch, record)
        for mode, dists in replay.items():
            for kind in CELL_TYPES:
                dists[kind].record(hooks.ops[kind], accuracy)
                dists[kind].update(0.5, mode)
        assert record["p"] == {kind: replay["logits"][kind].p.tolist() for kind in CELL_TYPES}
    assert not torch.allclose(replay["logits"]["normal"].p, replay["probs"]["normal"].p)   # the modes differ here


def test_search_cell_builds_and_trains_the_supernet_as_configured(monkeypatch):
    """search_cell's wiring, with SuperNet and fit replaced by recorders (no training)."""
    import par.search.mdl as mdl
    from par.training import FitResult

    calls = {}

    class Net(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            calls["net"] = (args, kwargs)

        def to(self, device):
            calls["net_device"] = device
            return self

    def fake_fit(model, task, hooks, train, val, config, eval_chunk=None, **kwargs):
        calls["fit"] = (type(model), model.net, task, hooks, train, val, config, eval_chunk, kwargs)
        return FitResult(0.0, 0, 0, [])

    monkeypatch.setattr(mdl, "SuperNet", Net)
    monkeypatch.setattr(mdl, "fit", fake_fit)
    forks, fork_rng = [], torch.random.fork_rng
    monkeypatch.setattr(torch.random, "fork_rng", lambda **kwargs: forks.append(kwargs) or fork_rng(**kwargs))
    images = torch.zeros((6, 4, 4, 3), dtype=torch.uint8)
    config = SearchConfig(sample_epochs=2, channels=5, n_layers=4, factorized_reduce_bn=True, batch_size=2)
    result = search_cell(images, torch.zeros(6, dtype=torch.long), 3, (0.5,) * 3, (0.25,) * 3, config, META,
                         eval_chunk=7)
    assert calls["net"] == ((3,), {"channels": 5, "n_layers": 4, "factorized_reduce_bn": True})
    assert forks == [{"devices": []}]   # the supernet is initialised on the CPU: no GPU's generator is forked
    assert calls["net_device"] == META
    kind, net, task, hooks, train, val, train_config, eval_chunk, kwargs = calls["fit"]
    assert (kind, net, task, train_config, eval_chunk, kwargs) == (mdl._Sampled, net, 0, config.train_config(), 7,
                                                                  {"keep_best": False})
    assert isinstance(net, Net) and train.images.device == val.images.device == META
    assert train.generator is val.generator is hooks.generator and hooks.generator.initial_seed() == 0  # seed 0
    assert result.history == [] and isinstance(result.genotype, Genotype)
