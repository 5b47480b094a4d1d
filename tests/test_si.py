"""Synaptic Intelligence (par/learners/si.py), the worked example of a method of one's own.

ω, Ω, the penalty and its gradient against numbers worked out by hand on a
two-weight model; the best-epoch rule through the real training loop; less
forgetting than finetune on the real CIFAR-10 slice.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import par.learners.si  # noqa: F401  (registers the strategy and the method "si")
import par.training
from par.learners.job import learn_task
from par.learners.methods import get_method
from par.learners.strategies import get_strategy
from par.learners.si import OMEGA_PREFIX, SI, SI_SECTION
from par.nets.model import MultiHeadModel, load_model, save_model
from par.streams.prepare import build_stream
from par.streams.tasks import task_data
from par.training import Batches, TrainConfig, evaluate, fit


class TwoWeightBody(nn.Module):
    def __init__(self, a: float, b: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))


class TwoWeights(nn.Module):
    """logits(x) = (a·x, b·x) for scalar inputs x; a and b are the body (what SI regularizes)."""

    def __init__(self, a: float, b: float, tasks=(1,), carry=None):
        super().__init__()
        self.body = TwoWeightBody(a, b)
        self.tasks = list(tasks)
        self.carry = dict(carry or {})

    def forward(self, x, task):
        return torch.stack([self.body.a * x, self.body.b * x], dim=1)

    def weights(self):
        return [self.body.a.item(), self.body.b.item()]


def scripted_step(si, model, grad, lr=0.1, clip=None, step=None):
    """One step of the loop with a known gradient: before_step, optional clip (in place,
    as fit's), θ −= lr · grad (or the given ``step``), after_step."""
    model.body.a.grad = torch.tensor(grad[0], dtype=torch.float64)
    model.body.b.grad = torch.tensor(grad[1], dtype=torch.float64)
    si.before_step(model, 1)
    if clip is not None:
        nn.utils.clip_grad_norm_(list(model.body.parameters()), clip)
    with torch.no_grad():
        for p, s in zip(model.body.parameters(), step or [None, None]):
            p -= lr * p.grad if s is None else -s
    si.after_step(model, 1)


def values(carry):
    return [carry[OMEGA_PREFIX + "a"].item(), carry[OMEGA_PREFIX + "b"].item()]


def test_path_integral_and_importance_of_a_first_task_by_hand():
    si = get_strategy("si", c=0.5, xi=0.1)
    model = TwoWeights(1.0, -1.0)
    si.start(model, 1)
    # step 1: g = (2, −1), Δθ = −0.1 g = (−0.2, 0.1); ω = −g·Δθ = (0.4, 0.1)
    scripted_step(si, model, (2.0, -1.0))
    assert [w.item() for w in si.omega.values()] == pytest.approx([0.4, 0.1], rel=1e-12)
    # step 2: g = (3, 4) clipped to norm 1 in place: × k = 1 / (5 + 1e-6) (torch's clip adds 1e-6 to the
    # norm) → Δθ = −0.1 k (3, 4); ω uses the unclipped g: += 0.1 k (9, 16) → (0.58, 0.42) up to k · 5 ≠ 1
    k = 1 / (5 + 1e-6)
    scripted_step(si, model, (3.0, 4.0), clip=1.0)
    assert [w.item() for w in si.omega.values()] == pytest.approx([0.4 + 0.9 * k, 0.1 + 1.6 * k], rel=1e-12)
    assert model.weights() == pytest.approx([0.8 - 0.3 * k, -0.9 - 0.4 * k], rel=1e-12)
    si.after_epoch(model, 1, 0, {"val_accuracy": 0.5})
    restored = copy.deepcopy(model.state_dict())
    # epoch 2 (one step, g = (1, 1), Δθ = (−0.1, −0.1), ω += (0.1, 0.1)) ties on validation:
    # fit keeps epoch 1 and restores its weights
    scripted_step(si, model, (1.0, 1.0))
    assert [w.item() for w in si.omega.values()] == pytest.approx([0.5 + 0.9 * k, 0.2 + 1.6 * k], rel=1e-12)
    si.after_epoch(model, 1, 1, {"val_accuracy": 0.5})
    model.load_state_dict(restored)
    carry = si.after_task(model, 1, None)
    # Δ = θ_restored − θ_start = (−0.2 − 0.3 k, 0.1 − 0.4 k) ≈ (−0.26, 0.02); Ω = ω_epoch1 / (Δ² + ξ):
    # a: 0.58 / (0.0676 + 0.1) ≈ 3.4606; b: 0.42 / (0.0004 + 0.1) ≈ 4.1833
    expected = [(0.4 + 0.9 * k) / ((0.2 + 0.3 * k) ** 2 + 0.1), (0.1 + 1.6 * k) / ((0.1 - 0.4 * k) ** 2 + 0.1)]
    assert values(carry) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx([3.4606, 4.1833], abs=1e-4)
    assert set(carry) == {"si.omega.a", "si.omega.b"}
    assert all(v.device.type == "cpu" for v in carry.values())


def test_penalty_its_gradient_and_the_unregularized_gradient_of_a_later_task_by_hand():
    si = get_strategy("si", c=0.5, xi=0.1)
    model = TwoWeights(1.0, -1.0, tasks=(1, 2), carry={"si.omega.a": torch.tensor(2.0, dtype=torch.float64),
                                                       "si.omega.b": torch.tensor(4.0, dtype=torch.float64)})
    si.start(model, 2)   # θ* = (1, −1), Ω = (2, 4)
    assert si.penalty(model).item() == 0.0
    with torch.no_grad():   # move away from θ* by (0.1, −0.2) outside the loop (no ω)
        model.body.a += 0.1
        model.body.b -= 0.2
    penalty = si.penalty(model)
    # c · Σ Ω (θ − θ*)² = 0.5 · (2 · 0.01 + 4 · 0.04) = 0.09
    assert penalty.item() == pytest.approx(0.09, rel=1e-12)
    grads = torch.autograd.grad(penalty, [model.body.a, model.body.b])
    # 2 c Ω (θ − θ*) = (2 · 0.5 · 2 · 0.1, 2 · 0.5 · 4 · (−0.2)) = (0.2, −0.8)
    assert [g.item() for g in grads] == pytest.approx([0.2, -0.8], rel=1e-12)
    x, y = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0, 1])
    loss, logits = si.loss(model, 2, x, y)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y).item() + 0.09, rel=1e-12)
    # the task loss alone: logits (1.1 x, −1.2 x); ∂CE/∂a = mean_i (p_i0 − [y_i = 0]) x_i, ∂CE/∂b = −∂CE/∂a
    p0 = [1 / (1 + math.exp(-2.3 * xi)) for xi in (1.0, -2.0)]
    g_a = ((p0[0] - 1) * 1.0 + p0[1] * -2.0) / 2
    loss.backward()
    assert model.body.a.grad.item() == pytest.approx(g_a + 0.2, rel=1e-12)   # the loop's gradient: CE + penalty
    si.before_step(model, 2)
    assert [g.item() for g in si.gradient.values()] == pytest.approx([g_a, -g_a], rel=1e-12)
    with torch.no_grad():
        for p in model.body.parameters():
            p -= 0.1 * p.grad
    si.after_step(model, 2)
    # ω = −g_ce · Δθ = −g_ce · (−0.1 (g_ce + penalty gradient))
    expected = [0.1 * g_a * (g_a + 0.2), 0.1 * -g_a * (-g_a - 0.8)]
    assert [w.item() for w in si.omega.values()] == pytest.approx(expected, rel=1e-12)
    si.after_epoch(model, 2, 0, {"val_accuracy": 0.0})
    carry = si.after_task(model, 2, None)
    # Ω ← Ω + ω / (Δ² + ξ), Δ = θ_end − θ* = (0.1, −0.2) − 0.1 (g_ce + penalty gradient)
    delta = [0.1 - 0.1 * (g_a + 0.2), -0.2 - 0.1 * (-g_a - 0.8)]
    assert values(carry) == pytest.approx([2.0 + expected[0] / (delta[0] ** 2 + 0.1),
                                           4.0 + expected[1] / (delta[1] ** 2 + 0.1)], rel=1e-12)


def test_importance_is_clamped_at_zero_and_skipped_or_missing_steps_add_nothing():
    si = get_strategy("si", c=0.5, xi=0.1)
    model = TwoWeights(1.0, -1.0, tasks=(1, 2), carry={"si.omega.a": torch.tensor(0.5, dtype=torch.float64),
                                                       "si.omega.b": torch.tensor(0.5, dtype=torch.float64)})
    si.start(model, 2)
    # a step against the task gradient (as momentum can make): g = (1, 1), Δθ = (0.1, −0.1);
    # at θ = θ* the penalty gradient is 0, so ω = −g·Δθ = (−0.1, 0.1)
    scripted_step(si, model, (1.0, 1.0), step=(0.1, -0.1))
    assert [w.item() for w in si.omega.values()] == pytest.approx([-0.1, 0.1], rel=1e-12)
    # a step the fp16 scaler skipped: g = (inf, nan), θ unchanged → ω unchanged (no NaN)
    scripted_step(si, model, (math.inf, math.nan), step=(0.0, 0.0))
    assert [w.item() for w in si.omega.values()] == pytest.approx([-0.1, 0.1], rel=1e-12)
    # a without a gradient (frozen; the first parameter, so the loop over the others goes on): not stepped,
    # not counted.  b: θ − θ* = −0.1, so the loop's gradient 1 holds the penalty's 2 c Ω (θ − θ*) =
    # 2 · 0.5 · 0.5 · (−0.1) = −0.05: g = 1.05, Δθ = −0.1, ω_b += 0.105
    model.body.a.requires_grad_(False)
    model.body.a.grad, model.body.b.grad = None, torch.tensor(1.0, dtype=torch.float64)
    si.before_step(model, 2)
    assert list(si.gradient) == ["b"]
    with torch.no_grad():
        model.body.b -= 0.1
    si.after_step(model, 2)
    assert [w.item() for w in si.omega.values()] == pytest.approx([-0.1, 0.205], rel=1e-12)
    si.after_epoch(model, 2, 0, {"val_accuracy": 1.0})
    carry = si.after_task(model, 2, None)
    # Δ = (0.1, −0.2) → a: max(0, 0.5 − 0.1 / (0.01 + 0.1)) = max(0, −0.409) = 0; b: 0.5 + 0.205 / (0.04 + 0.1)
    assert values(carry) == pytest.approx([0.0, 0.5 + 0.205 / 0.14], rel=1e-12)
    # max(0, ·): a negative path integral can cancel Ω but never make it negative
    si = get_strategy("si", c=0.5, xi=0.1)
    model = TwoWeights(1.0, -1.0)
    si.start(model, 1)
    scripted_step(si, model, (1.0, -1.0), step=(0.1, -0.1))   # ω = (−0.1, −0.1)
    si.after_epoch(model, 1, 0, {"val_accuracy": 1.0})
    assert values(si.after_task(model, 1, None)) == [0.0, 0.0]


def test_no_epoch_run_leaves_the_importance_as_it_was():
    si = get_strategy("si", xi=0.1)
    model = TwoWeights(1.0, -1.0, tasks=(1, 2), carry={"si.omega.a": torch.tensor(0.5, dtype=torch.float64),
                                                       "si.omega.b": torch.tensor(1.5, dtype=torch.float64)})
    si.start(model, 2)
    scripted_step(si, model, (1.0, 1.0))   # a step of an epoch that never ends (no after_epoch)
    assert values(si.after_task(model, 2, None)) == pytest.approx([0.5, 1.5], rel=1e-12)


class Recording(SI):
    """SI that also records ω and the weights at the end of every epoch (test only)."""

    def start(self, model, task):
        super().start(model, task)
        self.omega_per_epoch, self.weights_per_epoch = [], []

    def after_epoch(self, model, task, epoch, record):
        super().after_epoch(model, task, epoch, record)
        self.omega_per_epoch.append({n: w.clone() for n, w in self.omega.items()})
        self.weights_per_epoch.append({n: p.detach().clone() for n, p in model.body.named_parameters()})


def test_importance_uses_the_omega_of_the_epoch_fit_restores(monkeypatch):
    """Validation accuracies 0.2, 0.6, 0.6, 0.4: fit restores epoch 1 (the first best);
    Ω must come from ω at the end of epoch 1 and Δ from epoch 1's weights."""
    scripted = iter([0.2, 0.6, 0.6, 0.4])
    monkeypatch.setattr(par.training, "evaluate", lambda *args, **kwargs: next(scripted))
    torch.manual_seed(0)
    model = MultiHeadModel({"kind": "light_resnet18", "width": 2}, heads={1: 2})
    si = Recording(xi=0.01)
    si.start(model, 1)
    images = torch.randint(0, 256, (8, 8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1] * 4)
    config = TrainConfig(epochs=4, batch_size=4, lr=0.05, augment=False)
    train = Batches(images, labels, (0.5,) * 3, (0.25,) * 3, 4, torch.device("cpu"), shuffle=True, config=config,
                    generator=torch.Generator().manual_seed(2))
    result = fit(model, 1, si, train, train, config)
    assert result.best_epoch == 1
    restored = dict(model.body.named_parameters())
    assert all(torch.equal(restored[n], w) for n, w in si.weights_per_epoch[1].items())
    carry = si.after_task(model, 1, train)
    for n, start in si.anchor.items():
        at_best = si.omega_per_epoch[1][n] / ((restored[n].detach() - start) ** 2 + 0.01)
        assert torch.allclose(carry[OMEGA_PREFIX + n], at_best.clamp(min=0), rtol=1e-6, atol=0)
    # the later epochs changed ω: the rule is what the test checks, not a coincidence
    last = {n: si.omega_per_epoch[3][n] / ((restored[n].detach() - si.anchor[n]) ** 2 + 0.01) for n in si.anchor}
    assert any(not torch.allclose(carry[OMEGA_PREFIX + n], v.clamp(min=0)) for n, v in last.items())
    assert not any(torch.allclose(si.omega_per_epoch[1][n], si.omega_per_epoch[2][n]) for n in si.anchor)


def test_config_section_defaults_and_bad_values():
    """Defaults from the declaration (SI paper Sec. 5.3 / pathint: c 0.1, ξ 1e-3)."""
    assert SI_SECTION.name == "si" and SI_SECTION.defaults() == {"c": 0.1, "xi": 1e-3}
    si = get_strategy("si")
    assert (si.c, si.xi) == (0.1, 1e-3)
    assert SI.config is SI_SECTION and SI.config.name == "si"
    assert SI.options_from_config({"c": 2.0, "xi": 0.5}) == {"c": 2.0, "xi": 0.5}
    assert SI.keys_without_predecessor == ("xi",)
    assert set(SI.config_keys) == set(SI_SECTION.options)
    assert get_strategy("si", c=0.0).c == 0.0
    with pytest.raises(ValueError, match=r"^si: c must be >= 0, got -1.0$"):
        SI(c=-1.0)
    with pytest.raises(ValueError, match=r"^si: xi must be > 0, got 0.0$"):
        SI(xi=0.0)
    with pytest.raises(ValueError, match=r"^si: c must be >= 0, got nan$"):
        SI(c=math.nan)
    schema = SI_SECTION.json_schema()
    assert schema["properties"]["xi"]["exclusiveMinimum"] == 0 and schema["properties"]["c"]["minimum"] == 0


def test_si_chains_like_finetune():
    a = get_method("si").assignments(3)
    assert [x["strategy"] for x in a] == ["si"] * 3
    assert [x["predecessor"] for x in a] == [None, 1, 2]
    assert a[2]["group_tasks"] == [1, 2, 3]
    assert get_method("si").body_kind == "light_resnet18" and not get_method("si").needs_plan


def test_carry_reaches_the_next_task_through_a_saved_state_and_a_bad_one_is_refused(tmp_path):
    body = {"kind": "light_resnet18", "width": 2}
    first = get_strategy("si")
    model = first.prepare(None, body, 1, 2, torch.device("cpu"))
    assert first.importance == {} and first.penalty(model).item() == 0.0
    assert first.penalty(copy.deepcopy(model).to("meta")).device.type == "meta"   # no Ω yet: still on the device
    model.carry = first.after_task(model, 1, None)
    names = [n for n, _ in model.body.named_parameters()]
    assert sorted(model.carry) == sorted(OMEGA_PREFIX + n for n in names)
    save_model(tmp_path / "state.pt", model)
    later = get_strategy("si")
    model2 = later.prepare(load_model(tmp_path / "state.pt"), None, 2, 2, torch.device("cpu"))
    assert sorted(later.importance) == sorted(names)
    assert all(torch.equal(later.importance[n], model.carry[OMEGA_PREFIX + n]) for n in names)
    assert all(torch.equal(later.anchor[n], p) for n, p in model2.body.named_parameters())
    moved = get_strategy("si")
    moved.prepare(copy.deepcopy(model), None, 2, 2, torch.device("meta"))   # stands for an accelerator
    assert {v.device.type for v in [*moved.importance.values(), *moved.anchor.values()]} == {"meta"}
    assert moved.penalty(copy.deepcopy(model).to("meta")).device.type == "meta"
    bare = MultiHeadModel(body, heads={1: 2})
    with pytest.raises(ValueError, match=r"^si: the predecessor state carries no SI importance "
                                         r"\(was it learned by si\?\)$"):
        get_strategy("si").prepare(bare, None, 2, 2, torch.device("cpu"))
    other = MultiHeadModel(body, heads={1: 2}, carry={OMEGA_PREFIX + "x": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"^si: the carried importance names 1 parameters that are not the body's"):
        get_strategy("si").prepare(other, None, 2, 2, torch.device("cpu"))


def test_old_heads_are_left_alone_and_only_the_body_is_penalized():
    body = {"kind": "light_resnet18", "width": 2}
    first = get_strategy("si")
    model = first.prepare(None, body, 1, 2, torch.device("cpu"))
    model.carry = first.after_task(model, 1, None)
    assert not any(k.startswith(OMEGA_PREFIX + "heads") or "head" in k for k in model.carry)
    si = get_strategy("si", c=1.0)
    model = si.prepare(model, None, 2, 2, torch.device("cpu"))
    with torch.no_grad():
        model.head(1).weight += 1.0   # moving an old head costs nothing
    assert si.penalty(model).item() == 0.0


# ---- real CIFAR-10 --------------------------------------------------------------------------

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


CPU = torch.device("cpu")
BODY = {"kind": "light_resnet18", "width": 8}
# As tests/test_baselines.py: tasks memorised without augmentation at a high learning rate,
# c = 1 (ten times the default 0.1) so that the effect dominates the noise of 72 training images.
FORGET = TrainConfig(epochs=8, batch_size=16, lr=0.05, weight_decay=0.001, grad_clip=5, augment=False)


def learn_two_tasks(name, options, stream, images, seed):
    """Tasks 1 and 2 learned by strategy ``name``; validation = the training images."""
    models, model = [], None
    for t in (1, 2):
        strategy = get_strategy(name, **options)
        torch.manual_seed(seed + t)
        model = strategy.prepare(model, BODY, t, stream.task(t).n_classes, CPU)
        x, y = task_data(images, stream.task(t), "train")
        train = Batches(x, y, stream.mean, stream.std, FORGET.batch_size, CPU, shuffle=True, augment=False,
                        config=FORGET, generator=torch.Generator().manual_seed(seed + t))
        fit(model, t, strategy, train, Batches(x, y, stream.mean, stream.std, 500, CPU), FORGET)
        model.carry = strategy.after_task(model, t, train)
        models.append(copy.deepcopy(model))
    return models


def task1_accuracy(model, stream, images):
    x, y = task_data(images, stream.task(1), "train")
    return evaluate(model, 1, Batches(x, y, stream.mean, stream.std, 500, CPU))


def test_si_forgets_task_1_less_than_finetune(cifar10_arrays):
    stream = build_stream("cifar10-5", cifar10_arrays, 0)
    accuracy = {}
    for name, options in (("finetune", {}), ("si", {"c": 1.0})):
        after1, after2 = learn_two_tasks(name, options, stream, cifar10_arrays, seed=0)
        accuracy[name] = tuple(task1_accuracy(m, stream, cifar10_arrays) for m in (after1, after2))
    forgetting = {name: a1 - a2 for name, (a1, a2) in accuracy.items()}
    assert forgetting["finetune"] > 0.1, accuracy
    assert accuracy["si"][1] > accuracy["finetune"][1] + 0.05, accuracy
    assert forgetting["si"] < forgetting["finetune"] - 0.05, accuracy


def test_a_chain_of_learn_task_jobs_carries_omega_through_saved_states(cifar10_arrays, tmp_path):
    """The learn-task job's path: options from the config section, carry saved with the state."""
    stream = build_stream("cifar10-5", cifar10_arrays, 0)
    config = TrainConfig(epochs=2, batch_size=16, augment=False)
    options = {"si": SI.options_from_config({"c": 1.0, "xi": 0.01})}
    first, second = get_method("si").assignments(2)
    model1, record1 = learn_task(first, stream, cifar10_arrays, predecessor=None, body_spec=BODY,
                                 train_config=config, strategy_options=options, seed=0)
    n_body = sum(p.numel() for p in model1.body.parameters())
    assert record1["strategy"] == "si" and record1["n_carried"] == n_body
    assert all(v.min() >= 0 for v in model1.carry.values()) and any(v.sum() > 0 for v in model1.carry.values())
    save_model(tmp_path / "task1.pt", model1)
    model2, record2 = learn_task(second, stream, cifar10_arrays, predecessor=load_model(tmp_path / "task1.pt"),
                                 body_spec=None, train_config=config, strategy_options=options, seed=1)
    assert set(record2["test_accuracy"]) == {"1", "2"} and record2["n_carried"] == n_body
    assert all(v.min() >= 0 for v in model2.carry.values())
    assert any(not torch.equal(model2.carry[k], model1.carry[k]) for k in model1.carry)
    # the carried Ω is what task 2 is penalised with: from a state carrying Ω = 0 the body moves further from θ*
    unweighted = load_model(tmp_path / "task1.pt")
    unweighted.carry = {k: torch.zeros_like(v) for k, v in unweighted.carry.items()}
    free, _ = learn_task(second, stream, cifar10_arrays, predecessor=unweighted, body_spec=None,
                         train_config=config, strategy_options=options, seed=1)
    start = dict(model1.body.named_parameters())
    drift = [sum(float((p.detach() - start[n].detach()).pow(2).sum()) for n, p in m.body.named_parameters())
             for m in (model2, free)]
    assert drift[0] < drift[1], drift   # Σ (θ − θ*)² after task 2: smaller under the penalty
