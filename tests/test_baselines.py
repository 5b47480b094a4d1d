"""Regularization baselines (SPEC §7): EWC, LwF, MAS, MAS-α.

Importances and penalties against values derived by hand on a two-weight
model; α-scaling on a constructed case; forgetting on real CIFAR-10 images;
the carried importance through saved states.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import forgetting_config, learn_two_tasks, train_accuracy
from par.streams.tasks import task_data
from par.learners.job import learn_task
from par.learners.methods import get_method
from par.learners.strategies import get_strategy
from par.learners.regularizers import (AlphaScaledQuadratic, alpha_scales, empirical_fisher, mas_importance,
                                       quadratic_penalty, running_mean)
from par.nets.model import load_model, save_model
from par.training import Batches, TrainConfig


class TwoWeights(nn.Module):
    """logits(x) = (a·x, b·x) for scalar inputs x: two parameters, two classes."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))

    def forward(self, x, task):
        return torch.stack([self.a * x, self.b * x], dim=1)


A, B = 0.5, -0.3
XS = [1.0, 2.0, -1.0, 0.5]
YS = [0, 1, 1, 0]
BATCHES = [(torch.tensor(XS[:2], dtype=torch.float64), torch.tensor(YS[:2])),
           (torch.tensor(XS[2:], dtype=torch.float64), torch.tensor(YS[2:]))]


def ce_gradient(x, y):
    """(∂CE/∂a, ∂CE/∂b) of one sample: (p_k − [y = k]) · x, p = softmax(a x, b x)."""
    pa = 1.0 / (1.0 + math.exp((B - A) * x))
    return ((pa - (y == 0)) * x, ((1 - pa) - (y == 1)) * x)


def test_empirical_fisher_is_batch_size_times_mean_squared_batch_gradient():
    fisher = empirical_fisher(TwoWeights(A, B), 1, BATCHES, batch_size=2)
    expected = [0.0, 0.0]
    for k in (0, 1):
        for batch in ((0, 1), (2, 3)):
            g = sum(ce_gradient(XS[i], YS[i])[k] for i in batch) / 2   # gradient of the batch-mean CE
            expected[k] += 2 * g * g / 2                                # batch size · g², mean over 2 batches
    assert fisher["a"].item() == pytest.approx(expected[0], rel=1e-12)
    assert fisher["b"].item() == pytest.approx(expected[1], rel=1e-12)
    assert expected[0] > 0 and expected[1] > 0


def test_mas_importance_authors_and_aljundi_estimates():
    authors = mas_importance(TwoWeights(A, B), 1, BATCHES, batch_size=2, estimate="authors")
    # mean over batch and both classes of (a x)² + (b x)² → ∂/∂a = a · mean_b(x²)
    m1, m2 = (1.0 + 4.0) / 2, (1.0 + 0.25) / 2
    assert authors["a"].item() == pytest.approx(2 * ((A * m1) ** 2 + (A * m2) ** 2) / 2, rel=1e-12)
    assert authors["b"].item() == pytest.approx(2 * ((B * m1) ** 2 + (B * m2) ** 2) / 2, rel=1e-12)
    per_image = [(torch.tensor([x], dtype=torch.float64), torch.tensor([y])) for x, y in zip(XS, YS)]
    aljundi = mas_importance(TwoWeights(A, B), 1, per_image, batch_size=1, estimate="aljundi")
    # ‖f(x)‖² = (a² + b²) x² → |∂/∂a| = 2 |a| x², mean over the 4 images
    mean_x2 = sum(x * x for x in XS) / 4
    assert aljundi["a"].item() == pytest.approx(2 * abs(A) * mean_x2, rel=1e-12)
    assert aljundi["b"].item() == pytest.approx(2 * abs(B) * mean_x2, rel=1e-12)
    with pytest.raises(ValueError, match="estimate"):
        mas_importance(TwoWeights(A, B), 1, BATCHES, 2, estimate="fisher")


def test_penalty_is_zero_at_the_anchor_and_grows_away_from_it():
    model = TwoWeights(A, B)
    importance = {"a": torch.tensor(2.0, dtype=torch.float64), "b": torch.tensor(0.5, dtype=torch.float64)}
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert quadratic_penalty(model, importance, anchor).item() == 0.0
    values = []
    for step in (0.1, 0.2, 0.4):
        with torch.no_grad():
            model.a.copy_(anchor["a"] + step)
            model.b.copy_(anchor["b"] - step)
        values.append(quadratic_penalty(model, importance, anchor).item())
        assert values[-1] == pytest.approx(0.5 * (2.0 * step ** 2 + 0.5 * step ** 2), rel=1e-12)
    assert values[0] < values[1] < values[2]
    penalty = quadratic_penalty(model, importance, anchor)
    penalty.backward()
    assert model.a.grad.item() == pytest.approx(2.0 * 0.4, rel=1e-12)  # Ω (θ − θ*)


def test_running_mean_merges_tasks_as_the_authors():
    previous = {"body": torch.tensor([3.0, 6.0]), "head1": torch.tensor([9.0])}
    new = {"body": torch.tensor([0.0, 3.0]), "head1": torch.tensor([0.0]), "head3": torch.tensor([6.0])}
    merged = running_mean(previous, new, n_previous=2)
    assert merged["body"].tolist() == [2.0, 5.0]       # (new + 2 · previous) / 3
    assert merged["head1"].tolist() == [6.0]
    assert merged["head3"].tolist() == [2.0]           # a new head counts as 0 for the earlier tasks


def test_alpha_scaling_equalises_tasks_and_sums_to_lambda():
    totals = [1.0, 4.0, 0.5]
    alphas = alpha_scales(totals, 10.0)
    assert sum(alphas) == pytest.approx(10.0)
    scaled = [a * s for a, s in zip(alphas, totals)]
    assert scaled == pytest.approx([scaled[0]] * 3)
    assert alphas == pytest.approx([10 / 1 / 3.25, 10 / 4 / 3.25, 10 / 0.5 / 3.25])  # H = 1 + 1/4 + 2
    with pytest.raises(ValueError, match=r"^every task's importance total must be positive, got \[1.0, 0.0\]$"):
        alpha_scales([1.0, 0.0], 1.0)


def test_alpha_scaled_quadratic_equals_the_sum_over_tasks():
    gen = torch.Generator().manual_seed(0)
    names = ("a", "b")
    tasks = []
    for t in range(3):
        importance = {n: torch.rand(3, generator=gen, dtype=torch.float64) * 10 ** t for n in names}
        importance["b"][0] = 0.0   # a parameter one task does not use
        anchor = {n: torch.randn(3, generator=gen, dtype=torch.float64) for n in names}
        tasks.append((importance, anchor))
    quadratic = AlphaScaledQuadratic()
    for importance, anchor in tasks:
        quadratic.add_task(importance, anchor)
    quadratic = AlphaScaledQuadratic.from_carry(quadratic.to_carry())
    model = nn.Module()
    model.a = nn.Parameter(torch.randn(3, generator=gen, dtype=torch.float64))
    model.b = nn.Parameter(torch.randn(3, generator=gen, dtype=torch.float64))
    totals = [float(sum(i.sum() for i in imp.values())) for imp, _ in tasks]
    alphas = alpha_scales(totals, 300.0)
    explicit = sum(alpha * 0.5 * sum((imp[n] * (getattr(model, n) - anc[n]) ** 2).sum() for n in names)
                   for alpha, (imp, anc) in zip(alphas, tasks))
    assert quadratic.penalty(model, 300.0).item() == pytest.approx(explicit.item(), rel=1e-9)
    # one task: exactly MAS's penalty with c = λ
    single = AlphaScaledQuadratic()
    single.add_task(*tasks[0])
    mas = 300.0 * quadratic_penalty(model, tasks[0][0], tasks[0][1])
    assert single.penalty(model, 300.0).item() == pytest.approx(mas.item(), rel=1e-9)
    assert AlphaScaledQuadratic().penalty(model, 300.0).item() == 0.0


class TaskScaled(TwoWeights):
    """logits(x, task) = task · (a·x, b·x): which head is asked for matters."""

    def forward(self, x, task):
        return task * super().forward(x, task)


def test_mas_aljundi_divides_by_the_images_and_authors_is_the_default():
    """Batches of two images: the Aljundi estimate is a mean over the 4 images, not the 2 batches."""
    mean_x2 = sum(x * x for x in XS) / 4
    # per batch |∂ Σ_x (a² + b²) x² / ∂a| = 2 |a| Σ_x x² (same sign in both batches), summed, / 4 images
    aljundi = mas_importance(TwoWeights(A, B), 1, BATCHES, batch_size=2, estimate="aljundi")
    assert aljundi["a"].item() == pytest.approx(2 * abs(A) * mean_x2, rel=1e-12)
    head2 = mas_importance(TaskScaled(A, B), 2, BATCHES, batch_size=2, estimate="aljundi")
    assert head2["a"].item() == pytest.approx(4 * 2 * abs(A) * mean_x2, rel=1e-12)   # ‖f‖² = 4 (a² + b²) x²
    default = mas_importance(TwoWeights(A, B), 1, BATCHES, batch_size=2)
    authors = mas_importance(TwoWeights(A, B), 1, BATCHES, batch_size=2, estimate="authors")
    assert {n: v.item() for n, v in default.items()} == {n: v.item() for n, v in authors.items()}


def test_importance_estimates_leave_no_gradient_behind_and_refuse_no_batches():
    model = TwoWeights(A, B)
    for p in model.parameters():
        p.grad = torch.ones_like(p)   # stale gradients of the task's last training step
    empirical_fisher(model, 1, BATCHES, batch_size=2)
    assert all(p.grad is None for p in model.parameters())
    one = empirical_fisher(TwoWeights(A, B), 1, BATCHES[:1], batch_size=2)   # one batch is enough
    g = sum(ce_gradient(XS[i], YS[i])[0] for i in (0, 1)) / 2
    assert one["a"].item() == pytest.approx(2 * g * g, rel=1e-12)
    with pytest.raises(ValueError, match="^no batches to estimate parameter importance from$"):
        empirical_fisher(TwoWeights(A, B), 1, [], batch_size=2)
    with pytest.raises(ValueError, match="^no batches to estimate parameter importance from$"):
        mas_importance(TwoWeights(A, B), 1, [], batch_size=2, estimate="aljundi")


def test_penalties_are_on_the_model_device_even_with_no_term():
    model = TwoWeights(A, B).to("meta")   # stands for an accelerator: not the default device
    assert quadratic_penalty(model, {}, {}).device.type == "meta"
    assert AlphaScaledQuadratic().penalty(model, 3.0).device.type == "meta"


def test_alpha_scaled_quadratic_small_and_zero_importance_and_unused_entries():
    quadratic = AlphaScaledQuadratic()
    with pytest.raises(ValueError, match="^the task's importance is zero everywhere; MAS-α cannot scale it$"):
        quadratic.add_task({"a": torch.zeros(2, dtype=torch.float64)}, {"a": torch.ones(2, dtype=torch.float64)})
    assert quadratic.n_tasks == 0
    # totals of 0.25 (below 1) are valid; entry 1 is used by no task: its centre is the latest anchor
    for anchor in ([1.0, 2.0], [3.0, -4.0]):
        quadratic.add_task({"a": torch.tensor([0.25, 0.0], dtype=torch.float64)},
                           {"a": torch.tensor(anchor, dtype=torch.float64)})
    assert quadratic.centre["a"].tolist() == [2.0, -4.0]
    model = nn.Module()
    model.a = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    # α_t = 2 / (0.25 · (4 + 4)) = 1 each: ½ · 0.25 · (0 − 1)² + ½ · 0.25 · (0 − 3)² = 1.25
    assert quadratic.penalty(model, 2.0).item() == pytest.approx(1.25, rel=1e-12)
    assert quadratic.to(torch.device("meta")) is quadratic
    assert {v.device.type for v in [*quadratic.weight.values(), *quadratic.centre.values()]} == {"meta"}


class TwoBatches(list):
    """BATCHES as a strategy's ``train`` argument (iterable, with the configured batch size)."""

    batch_size = 2


def test_lwf_soft_cross_entropy_smoothing_by_hand_and_without_warnings():
    """T = 1, ε = 0.2, K = 2: row 1 student (1/4, 3/4) → (0.35, 0.85) / 1.2, teacher (3/4, 1/4);
    row 2 uniform against uniform: −ln ½.  No warning (softmax over the classes, dim 1)."""
    import warnings

    from par.learners.distillation import lwf_soft_cross_entropy

    student = torch.tensor([[0.0, math.log(3)], [0.0, 0.0]], dtype=torch.float64)
    teacher = torch.tensor([[math.log(3), 0.0], [1.0, 1.0]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = lwf_soft_cross_entropy(student, teacher, temperature=1.0, epsilon=0.2).item()
    row1 = -(0.75 * math.log(0.35 / 1.2) + 0.25 * math.log(0.85 / 1.2))
    assert value == pytest.approx((row1 + math.log(2)) / 2, rel=1e-12)


class Heads(nn.Module):
    """body: Linear 2 → 3, a Linear 3 → 2 head per task 1, 2 (seeded): what distillation_loss uses."""

    def __init__(self, seed):
        super().__init__()
        self.body = nn.Linear(2, 3, dtype=torch.float64)
        self.heads = nn.ModuleDict({str(t): nn.Linear(3, 2, dtype=torch.float64) for t in (1, 2)})
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))

    def head(self, task):
        return self.heads[str(task)]


def test_distillation_loss_uses_the_given_temperature():
    from par.learners.distillation import distillation_loss, lwf_soft_cross_entropy

    student, teacher = Heads(0), Heads(1)
    x, y = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=torch.float64), torch.tensor([0, 1])
    loss, logits = distillation_loss(student, teacher, 2, [1], x, y, temperature=5.0, weight=0.5)
    soft = lwf_soft_cross_entropy(student.head(1)(student.body(x)), teacher.head(1)(teacher.body(x)), 5.0)
    assert loss.item() == pytest.approx((F.cross_entropy(logits, y) + 0.5 * soft).item(), rel=1e-12)


def test_baseline_defaults_are_the_papers():
    """docs/spec.md §7: EWC λ 3000, LwF T 2 and c 2, MAS c 300 (MAS-α's λ the same)."""
    assert get_strategy("ewc").penalty_lambda == 3000.0
    assert get_strategy("mas").penalty_lambda == 300.0 and get_strategy("mas-alpha").alpha_sum == 300.0
    lwf = get_strategy("lwf")
    assert (lwf.distillation_weight, lwf.distillation_temperature) == (2.0, 2.0)
    assert get_strategy("ewc", penalty_lambda=5.0).penalty_lambda == 5.0   # the options reach the strategy


def test_lwf_teacher_is_a_frozen_copy_for_the_earlier_heads_only():
    from par.nets.model import MultiHeadModel

    lwf = get_strategy("lwf")
    model = lwf.prepare(None, {"kind": "light_resnet18", "width": 2}, 1, 2, torch.device("cpu"))
    assert lwf.old_tasks == [] and lwf.teacher is None          # first task: plain CE, no copy
    lwf = get_strategy("lwf")
    model = lwf.prepare(model, None, 2, 2, torch.device("cpu"))
    assert lwf.old_tasks == [1]
    assert lwf.teacher is not None and not any(p.requires_grad for p in lwf.teacher.parameters())
    assert isinstance(lwf.teacher, MultiHeadModel) and not lwf.teacher.training


def test_importance_penalties_add_the_penalty_to_the_cross_entropy():
    ewc = get_strategy("ewc", penalty_lambda=10.0)
    model = TwoWeights(A, B)
    ewc.importance = {"a": torch.tensor(2.0, dtype=torch.float64)}
    ewc.anchor = {"a": torch.tensor(A - 0.1, dtype=torch.float64)}
    x, y = BATCHES[0]
    loss, logits = ewc.loss(model, 1, x, y)
    assert loss.item() == pytest.approx((F.cross_entropy(logits, y) + 10.0 * 0.5 * 2.0 * 0.1 ** 2).item(), rel=1e-9)
    alpha = get_strategy("mas-alpha", alpha_sum=10.0)
    alpha.quadratic = AlphaScaledQuadratic()
    alpha.quadratic.add_task(ewc.importance, ewc.anchor)   # one task: exactly MAS's penalty with c = λ
    loss, logits = alpha.loss(model, 1, x, y)
    assert loss.item() == pytest.approx((F.cross_entropy(logits, y) + 10.0 * 0.5 * 2.0 * 0.1 ** 2).item(), rel=1e-9)


def test_mas_strategies_estimate_with_the_configured_importance():
    expected = mas_importance(TwoWeights(A, B), 1, BATCHES, 2, estimate="aljundi")
    mas = get_strategy("mas", importance="aljundi")
    assert {n: v.item() for n, v in mas.estimate(TwoWeights(A, B), 1, TwoBatches(BATCHES)).items()} == \
        {n: v.item() for n, v in expected.items()}
    alpha = get_strategy("mas-alpha", importance="aljundi")
    alpha.quadratic = AlphaScaledQuadratic()
    carry = alpha.after_task(TwoWeights(A, B), 1, TwoBatches(BATCHES))
    total = sum(v.item() for v in expected.values())
    assert carry["weight.a"].item() == pytest.approx(expected["a"].item() / total, rel=1e-12)


def test_penalty_strategies_move_the_carry_to_the_device_and_refuse_a_missing_one():
    from par.nets.model import MultiHeadModel

    body = {"kind": "light_resnet18", "width": 2}
    for name in ("ewc", "mas-alpha"):
        first = get_strategy(name)
        model = first.prepare(None, body, 1, 2, torch.device("cpu"))
        model.carry = first.after_task(model, 1, TwoBatches([(torch.rand(2, 3, 8, 8), torch.tensor([0, 1]))]))
        later = get_strategy(name)
        later.prepare(copy.deepcopy(model), None, 2, 2, torch.device("meta"))   # stands for an accelerator
        carried = later.importance.values() if name == "ewc" else later.quadratic.weight.values()
        assert {v.device.type for v in carried} == {"meta"}
    bare = MultiHeadModel(body, heads={1: 2})
    with pytest.raises(ValueError, match=r"^mas-alpha: the predecessor state carries no importance "
                                         r"\(was it learned by mas-alpha\?\)$"):
        get_strategy("mas-alpha").prepare(bare, None, 2, 2, torch.device("cpu"))


def test_baselines_chain_like_finetune():
    for name in ("ewc", "lwf", "mas", "mas-alpha"):
        a = get_method(name).assignments(3)
        assert [x["strategy"] for x in a] == [name] * 3
        assert [x["predecessor"] for x in a] == [None, 1, 2]
        assert a[2]["group_tasks"] == [1, 2, 3]


# ---- real CIFAR-10 --------------------------------------------------------------------------

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


BODY = {"kind": "light_resnet18", "width": 8}
CPU = torch.device("cpu")
# Forgetting test: tasks memorised without augmentation at a high learning rate,
# strong penalties so that the effect dominates the noise of 72 training images.
FORGET = forgetting_config()
STRONG = {"finetune": {}, "ewc": {"penalty_lambda": 3000.0}, "mas": {"penalty_lambda": 3000.0},
          "mas-alpha": {"alpha_sum": 3000.0}, "lwf": {"c": 2.0}}


@pytest.mark.parametrize("seed", [0])
def test_penalties_forget_less_than_finetune(seed, stream, cifar10_arrays):
    """Drop of task 1's accuracy (on its memorised training images) after task 2."""
    forgetting = {}
    for method in ("finetune", "ewc", "mas", "mas-alpha"):
        after1, after2 = learn_two_tasks(method, stream, cifar10_arrays, seed, body=BODY, config=FORGET,
                                         options=STRONG[method])
        forgetting[method] = (train_accuracy(after1, stream, cifar10_arrays, 1)
                              - train_accuracy(after2, stream, cifar10_arrays, 1))
    assert forgetting["finetune"] > 0.1, forgetting
    for method in ("ewc", "mas", "mas-alpha"):
        assert forgetting[method] < forgetting["finetune"] - 0.05, forgetting


@pytest.mark.parametrize("seed", [0])
def test_lwf_keeps_the_old_head_closer_to_its_teacher_than_finetune(seed, stream, cifar10_arrays):
    """LwF preserves the old head's soft outputs on the new task's images (what it
    distils); on 72 training images per task its accuracy on task 1 is not
    reliably better than finetune's (see README), so the test measures the
    function it preserves: KL(teacher ‖ model) of head 1 on task 2's images."""
    x, y = task_data(cifar10_arrays, stream.task(2), "train")
    images = next(iter(Batches(x, y, stream.mean, stream.std, 500, CPU)))[0]
    drift = {}
    for method in ("finetune", "lwf"):
        after1, after2 = learn_two_tasks(method, stream, cifar10_arrays, seed, body=BODY, config=FORGET,
                                         options=STRONG[method])
        after1.eval(), after2.eval()
        with torch.no_grad():
            p_old = torch.log_softmax(after1(images, 1), 1)
            p_new = torch.log_softmax(after2(images, 1), 1)
        drift[method] = (p_old.exp() * (p_old - p_new)).sum(1).mean().item()
    assert drift["lwf"] < 0.5 * drift["finetune"], drift


def test_importance_travels_with_the_state_and_resumes(stream, cifar10_arrays, tmp_path):
    """learn_task → save_model → load_model → learn_task: the successor reads the
    Fisher from the state file; the record counts it; a fresh start without it fails."""
    config = TrainConfig(epochs=1, batch_size=16)
    first = get_method("ewc").assignments(2)
    model, record = learn_task(first[0], stream, cifar10_arrays, predecessor=None, body_spec=BODY,
                               train_config=config, seed=0)
    n_params = sum(p.numel() for p in model.parameters())
    assert set(model.carry) == {f"importance.{n}" for n, _ in model.named_parameters()}
    assert record["n_carried"] == n_params
    save_model(tmp_path / "task1.pt", model)
    loaded = load_model(tmp_path / "task1.pt")
    for name, value in model.carry.items():
        assert torch.equal(loaded.carry[name], value)
    fisher1 = loaded.carry["importance.body.features.0.weight"].clone()
    assert fisher1.abs().sum() > 0
    model2, record2 = learn_task(first[1], stream, cifar10_arrays, predecessor=loaded, body_spec=None,
                                 train_config=config, strategy_options={"ewc": {"penalty_lambda": 3000.0}}, seed=1)
    assert set(record2["test_accuracy"]) == {"1", "2"}
    assert "importance.heads.2.weight" in model2.carry
    # task 2's head was not used by task 1: its merged importance is its own Fisher / 2
    assert not torch.equal(model2.carry["importance.body.features.0.weight"], fisher1)

    bare = load_model(tmp_path / "task1.pt")
    bare.carry = {}
    with pytest.raises(ValueError, match="carries no parameter importance"):
        learn_task(first[1], stream, cifar10_arrays, predecessor=bare, body_spec=None, train_config=config, seed=1)


def test_mas_alpha_state_has_constant_size(stream, cifar10_arrays):
    config = TrainConfig(epochs=1, batch_size=16)
    model, sizes = None, []
    for a in get_method("mas-alpha").assignments(3):
        model, record = learn_task(a, stream, cifar10_arrays, predecessor=model, body_spec=BODY,
                                   train_config=config, seed=a["task"])
        sizes.append(record["n_carried"] - 2 * record["n_params"])
        assert int(model.carry["n_tasks"]) == a["task"]
    assert sizes == [3, 3, 3]   # weight and centre per parameter, plus spread, harmonic, n_tasks


def test_carried_importance_is_the_running_mean_over_the_chain():
    """Ω carried after task t = (Ω̂_t + (t − 1) · Ω_{t−1}) / t (authors' ewc.py / mas.py), with
    stubbed per-task estimates 3, 6, 9: after task 2 (6 + 3) / 2 = 4.5, after task 3
    (9 + 2 · 4.5) / 3 = 6; a head added at task 2 has (9 + 2 · 3) / 3 = 5 after task 3."""
    from par.learners.penalties import EWC

    model = None
    for t, value in ((1, 3.0), (2, 6.0), (3, 9.0)):
        strategy = EWC()
        strategy.estimate = lambda m, task, train, v=value: {n: torch.full_like(p, v) for n, p in m.named_parameters()}
        model = strategy.prepare(model, {"kind": "light_resnet18", "width": 2}, t, 2, CPU)
        model.carry = strategy.after_task(model, t, None)
        if t == 2:
            assert model.carry["importance.body.features.0.weight"].unique().tolist() == [4.5]
            assert model.carry["importance.heads.2.weight"].unique().tolist() == [3.0]
    assert model.carry["importance.body.features.0.weight"].unique().tolist() == [6.0]
    assert model.carry["importance.heads.2.weight"].unique().tolist() == [5.0]
    assert model.carry["importance.heads.3.weight"].unique().tolist() == [3.0]
