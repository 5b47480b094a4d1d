"""HAT (SPEC §9; joansj/hat): gates, annealing, mask regulariser and gradient
compensation against hand-derived values on a two-layer net; gradients of the
units used by task 1 masked while learning task 2 on the gated light ResNet18;
the cumulative mask carried by the state; forgetting on real CIFAR-10 images.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import forgetting_config, learn_two_tasks, train_accuracy
from par.learners import hat  # noqa: F401  (registers strategy hat)
from par.learners.job import learn_task
from par.learners.methods import get_method
from par.learners.strategies import get_strategy
from par.learners.hat import annealed_s, compensate, gate, mask_regulariser
from par.nets.model import count_parameters, load_model, save_model
from par.training import TrainConfig

CPU = torch.device("cpu")
MLP = {"kind": "hat_mlp", "in_features": 2, "hidden": 3}
HAT_BODY = {"kind": "hat_light_resnet18", "width": 8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_gate_is_the_sigmoid_of_s_times_e():
    out = gate(torch.tensor([0.0, 1.0, -2.0]), 2.0)
    assert torch.allclose(out, torch.tensor([0.5, sigmoid(2.0), sigmoid(-4.0)]))


def test_s_is_annealed_from_one_over_s_max_over_the_epoch():
    assert annealed_s(0, 100, 400.0) == pytest.approx(1 / 400)
    assert annealed_s(50, 100, 400.0) == pytest.approx((400 - 1 / 400) / 2 + 1 / 400)
    assert annealed_s(100, 100, 400.0) == pytest.approx(400.0)


def test_mask_regulariser_by_hand():
    masks = {"a": torch.tensor([0.5, 1.0]), "b": torch.tensor([0.2])}
    assert mask_regulariser(masks, None).item() == pytest.approx((0.5 + 1.0 + 0.2) / 3)
    pre = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.5])}
    # Σ a (1 − a_pre) = 0.5·0 + 1·1 + 0.2·0.5 = 1.1; Σ (1 − a_pre) = 0 + 1 + 0.5 = 1.5
    assert mask_regulariser(masks, pre).item() == pytest.approx(1.1 / 1.5)


def test_compensation_by_hand():
    grad = torch.ones(3, dtype=torch.float64)
    e = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    out = compensate(grad, e, 2.0, 400.0)
    # s_max/s · (cosh(s e) + 1) / (cosh(e) + 1) with s = 2: 200 · 2/2, 200 · (cosh 1 + 1)/(cosh .5 + 1), …
    expected = [200.0, 200 * (math.cosh(1.0) + 1) / (math.cosh(0.5) + 1), 200 * (math.cosh(2.0) + 1) / (math.cosh(1.0) + 1)]
    assert out.tolist() == pytest.approx(expected)
    clamped = compensate(torch.ones(1, dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64), 400.0, 400.0)
    assert clamped.item() == pytest.approx((math.cosh(50.0) + 1) / (math.cosh(1.0) + 1))  # s e clamped at 50


def two_layer(strategy, predecessor=None, task=1):
    """The HAT MLP (2 → 3 → 3, head 3 → 2) prepared for ``task`` with fixed weights and embeddings."""
    torch.manual_seed(0)
    model = strategy.prepare(predecessor, MLP if predecessor is None else None, task, 2, CPU)
    return model


def set_embeddings(model, task, fc1, fc2):
    with torch.no_grad():
        model.body.embeddings[str(task)]["fc1"].copy_(torch.tensor(fc1))
        model.body.embeddings[str(task)]["fc2"].copy_(torch.tensor(fc2))


def test_two_layer_net_loss_compensation_clamp_and_mask_by_hand():
    hat = get_strategy("hat", s_max=400.0, c=0.75)
    model = two_layer(hat)
    set_embeddings(model, 1, [2.0, -2.0, 0.5], [1.0, 0.0, -1.0])
    hat.n_train = 4
    hat.before_epoch(model, 1, 0, 2)
    x, y = torch.tensor([[1.0, -1.0], [0.5, 2.0]]), torch.tensor([0, 1])
    # batch 1 of an epoch of 4 samples in batches of 2: s = 1/400
    loss, logits = hat.loss(model, 1, x, y)
    s = 1 / 400
    assert hat.s == pytest.approx(s) and model.body.s == pytest.approx(s)
    a1 = torch.sigmoid(s * torch.tensor([2.0, -2.0, 0.5]))
    a2 = torch.sigmoid(s * torch.tensor([1.0, 0.0, -1.0]))
    b = model.body
    h = F.relu(b.fc2(F.relu(b.fc1(x)) * a1)) * a2
    expected_logits = model.head(1)(h)
    assert torch.allclose(logits, expected_logits)
    reg = (a1.sum() + a2.sum()) / 6
    assert loss.item() == pytest.approx((F.cross_entropy(expected_logits, y) + 0.75 * reg).item(), rel=1e-6)
    # compensation of the embedding gradients, computed by hand from the raw ones
    model.zero_grad()
    loss.backward()
    e1 = model.body.embeddings["1"]["fc1"]
    raw = e1.grad.clone()
    hat.before_step(model, 1)
    factor = 400 / s * (torch.cosh(torch.clamp(s * e1.detach(), -50, 50)) + 1) / (torch.cosh(e1.detach()) + 1)
    assert torch.allclose(e1.grad, raw * factor)
    # second batch: s = (400 − 1/400)·2/4 + 1/400
    hat.loss(model, 1, x, y)
    assert hat.s == pytest.approx((400 - 1 / 400) / 2 + 1 / 400)
    # clamp ±6 after a step
    with torch.no_grad():
        e1.copy_(torch.tensor([9.0, -7.0, 0.5]))
    hat.after_step(model, 1)
    assert e1.tolist() == [6.0, -6.0, 0.5]
    # after the task: the cumulative mask is σ(s_max e) (first task)
    carry = hat.after_task(model, 1, None)
    assert torch.allclose(carry["hat.mask.fc1"], torch.sigmoid(400 * torch.tensor([6.0, -6.0, 0.5])))
    model.eval()
    assert model.body.current_s() == 400.0
    model.train()   # after the task also in train mode (BatchNorm statistics): the gates of s_max
    assert model.body.current_s() == 400.0
    # used units: fc1 σ(400·(6, −6, 0.5)) → 2 of 3; fc2 σ(400·(1, 0, −1)) = (1, ½, 0) → 1 (½ is not used)
    assert hat.record_fields(model) == {"n_mask_units": 6, "mask_used_fraction": 0.5}


def test_gradients_of_task_1_units_are_masked_for_task_2_on_the_two_layer_net():
    hat1 = get_strategy("hat")
    model = two_layer(hat1)
    set_embeddings(model, 1, [6.0, -6.0, 6.0], [6.0, 6.0, -6.0])  # task 1 uses fc1 units 0, 2 and fc2 units 0, 1
    model.carry = hat1.after_task(model, 1, None)
    hat2 = get_strategy("hat")
    model = hat2.prepare(model, None, 2, 2, CPU)
    hat2.n_train = 2
    hat2.before_epoch(model, 2, 0, 1)
    y = torch.tensor([0, 1])
    loss, logits = hat2.loss(model, 2, torch.tensor([[1.0, -1.0], [0.5, 2.0]]), y)
    free = model.body.mask(2, hat2.s)
    # c · R over the units free after task 1 only: fc1 unit 1, fc2 unit 2
    assert loss.item() == pytest.approx((F.cross_entropy(logits, y) + 0.75 * (free["fc1"][1] + free["fc2"][2]) / 2).item(),
                                        rel=1e-6)
    loss.backward()
    raw = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    hat2.before_step(model, 2)
    g = model.body.fc1.weight.grad
    assert torch.equal(g[[0, 2]], torch.zeros(2, 2)) and torch.equal(g[1], raw["body.fc1.weight"][1])
    assert model.body.fc1.bias.grad[[0, 2]].abs().max() == 0
    g2 = model.body.fc2.weight.grad
    # protected: output unit used by task 1 (0, 1) and input unit used by task 1 (0, 2)
    for o in range(3):
        for i in range(3):
            if o in (0, 1) and i in (0, 2):
                assert g2[o, i] == 0
            else:
                assert g2[o, i] == raw["body.fc2.weight"][o, i]
    # task 1's embeddings, BN and head: not used for task 2, so no gradient at all
    assert model.body.embeddings["1"]["fc1"].grad is None and model.head(1).weight.grad is None
    # the regulariser of task 2 counts only the units free after task 1: fc1 unit 1, fc2 unit 2
    masks = model.body.mask(2, hat2.s)
    assert mask_regulariser(masks, hat2.mask_pre).item() == pytest.approx(
        ((masks["fc1"][1] + masks["fc2"][2]) / 2).item(), rel=1e-4)
    # after task 2 the cumulative mask is the unitwise max of task 1's and σ(s_max e_2)
    set_embeddings(model, 2, [-6.0, 6.0, 6.0], [-6.0, 0.001, -6.0])
    carry = hat2.after_task(model, 2, None)
    assert torch.equal(carry["hat.mask.fc1"], torch.ones(3))
    assert torch.allclose(carry["hat.mask.fc2"], torch.tensor([1.0, 1.0, 0.0]), atol=1e-7)
    set_embeddings(model, 2, [-6.0, -6.0, -6.0], [-6.0, -6.0, -6.0])
    assert torch.allclose(hat2.after_task(model, 2, None)["hat.mask.fc2"], torch.tensor([1.0, 1.0, 0.0]), atol=1e-7)


def test_hat_defaults_are_joansj_settings():
    hat = get_strategy("hat")
    assert (hat.s_max, hat.c, hat.clamp, hat.thres_cosh) == (400.0, 0.75, 6.0, 50.0)


def test_compensation_uses_the_configured_thres_cosh():
    hat = get_strategy("hat", thres_cosh=3.0)
    model = two_layer(hat)
    set_embeddings(model, 1, [0.02, -0.03, 0.05], [1.0, 0.0, -1.0])   # s e = 4, −6, 10: unsaturated, beyond ±3
    hat.n_train = 4
    hat.before_epoch(model, 1, 0, 2)
    x, y = torch.tensor([[1.0, -1.0], [0.5, 2.0]]), torch.tensor([0, 1])
    hat.loss(model, 1, x, y)
    loss, _ = hat.loss(model, 1, x, y)     # second batch: s ≈ 200, so s e is clamped at ±3
    s = (400 - 1 / 400) / 2 + 1 / 400
    model.zero_grad()
    loss.backward()
    e1 = model.body.embeddings["1"]["fc1"]
    raw = e1.grad.clone()
    assert raw.abs().min() > 0
    hat.before_step(model, 1)
    factor = 400 / s * (torch.cosh(torch.clamp(s * e1.detach(), -3, 3)) + 1) / (torch.cosh(e1.detach()) + 1)
    assert torch.allclose(e1.grad, raw * factor)


def test_the_carried_mask_moves_to_the_training_device_and_a_missing_one_is_refused():
    hat1 = get_strategy("hat")
    model = two_layer(hat1)
    model.carry = hat1.after_task(model, 1, None)
    hat2 = get_strategy("hat")
    hat2.prepare(copy.deepcopy(model), None, 2, 2, torch.device("meta"))   # stands for an accelerator
    assert {v.device.type for v in hat2.mask_pre.values()} == {"meta"}
    assert hat2.record_fields(model) == {}    # before the task ends: no mask to report
    model.carry = {}
    with pytest.raises(ValueError, match=r"^hat: the predecessor state carries no cumulative mask "
                                         r"\(was it learned by hat\?\)$"):
        get_strategy("hat").prepare(model, None, 2, 2, CPU)


HAT_CONFIG = TrainConfig(epochs=1, batch_size=16, lr=0.05, weight_decay=0.0, grad_clip=10000.0)


def test_units_of_task_1_get_zero_gradient_and_stay_put_while_learning_task_2(stream, cifar10_arrays, tmp_path):
    """The gated light ResNet18 through learn_task, save and load: while task 2
    trains, every conv weight whose output and input units task 1 uses (cumulative
    mask = 1 in float32, σ(400 e) for e ≳ 0.05) gets exactly zero gradient (checked at every step) and ends
    unchanged; task 1's test accuracy is unchanged (its own BN layers and head)."""
    plan = get_method("hat").assignments(2)
    model1, record1 = learn_task(plan[0], stream, cifar10_arrays, predecessor=None, body_spec=HAT_BODY,
                                 train_config=HAT_CONFIG, seed=0)
    assert set(model1.carry) == {f"hat.mask.{k}" for k in model1.body.gate_sizes}
    assert record1["n_carried"] == record1["n_mask_units"] == 8 * 17
    save_model(tmp_path / "task1.pt", model1)
    loaded = load_model(tmp_path / "task1.pt")
    before = {n: p.detach().clone() for n, p in loaded.body.named_parameters()}
    protected = {f"body.{n}": (v == 1.0) for n, v in loaded.body.weight_masks(
        {k[len("hat.mask."):]: t for k, t in loaded.carry.items()}).items()}
    assert sum(int(m.sum()) for m in protected.values()) > 0

    from par.learners.hat import HAT
    checked = []
    original = HAT.before_step

    def checking(self, model, task):
        original(self, model, task)
        for n, p in model.named_parameters():
            if n in protected:
                assert p.grad[protected[n]].abs().max() == 0, n
        checked.append(task)

    HAT.before_step = checking
    try:
        model2, record2 = learn_task(plan[1], stream, cifar10_arrays, predecessor=loaded, body_spec=None,
                                     train_config=HAT_CONFIG, seed=1)
    finally:
        HAT.before_step = original
    assert len(checked) == 5  # 72 images in batches of 16, tail of 8 kept
    for n, p in model2.body.named_parameters():
        key = f"body.{n}"
        if key in protected:
            assert torch.equal(p.detach()[protected[key]], before[n][protected[key]]), n
    assert record2["test_accuracy"]["1"] == record1["test_accuracy"]["1"]
    # M counts the embeddings and per-task BN layers of both tasks
    assert record2["n_params"] == count_parameters(model2) > record1["n_params"]
    bare = load_model(tmp_path / "task1.pt")
    bare.carry = {}
    with pytest.raises(ValueError, match="carries no cumulative mask"):
        learn_task(plan[1], stream, cifar10_arrays, predecessor=bare, body_spec=None, train_config=HAT_CONFIG,
                   seed=1)


def test_hat_refuses_an_ungated_body():
    with pytest.raises(ValueError, match="needs a gated body"):
        get_strategy("hat").prepare(None, {"kind": "light_resnet18", "width": 8}, 1, 2, CPU)


# Forgetting test (as tests/test_memory_methods.py): no augmentation, validation =
# training images; HAT without weight decay and with joansj's clip 10000, and
# more steps (16 epochs of batch 8: the annealed gates need them to learn task 1;
# measured task-1 accuracy 0.89 / 0.85 for seeds 0 / 1, forgetting exactly 0 both).
FORGET = forgetting_config()
HAT_FORGET = TrainConfig(epochs=16, batch_size=8, lr=0.05, weight_decay=0.0, grad_clip=10000.0, augment=False)


@pytest.mark.parametrize("seed", [0])
def test_hat_forgets_less_than_finetune(seed, stream, cifar10_arrays):
    forgetting = {}
    for method, body, config in (("finetune", {"kind": "light_resnet18", "width": 8}, FORGET),
                                 ("hat", HAT_BODY, HAT_FORGET)):
        after1, after2 = learn_two_tasks(method, stream, cifar10_arrays, seed, body=body, config=config)
        first = train_accuracy(after1, stream, cifar10_arrays, 1)
        forgetting[method] = first - train_accuracy(after2, stream, cifar10_arrays, 1)
        if method == "hat":
            assert first > 0.7, first  # it did learn task 1
    assert forgetting["finetune"] > 0.1, forgetting
    assert forgetting["hat"] < forgetting["finetune"] - 0.05, forgetting
