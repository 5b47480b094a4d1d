"""training.amp: off changes no number; bf16/fp16 autocast train and evaluate; fp16's gradient
scaler is unscaled before the gradient hooks (README, Speed)."""
import copy
import math

import pytest
import torch

from par.learners.strategies import Finetune
from par.training import TrainConfig, autocast, evaluate, evaluate_tasks, fit
from tests.test_speed import expert_model, real_batches


def one_epoch(arrays, hooks=None, **config):
    model = expert_model((1,))
    train = real_batches(arrays, [0, 1], shuffle=True, augment=True, generator=torch.Generator().manual_seed(1), n=64)
    result = fit(model, 1, hooks or Finetune(), train, real_batches(arrays, [0, 1], n=32),
                 TrainConfig(epochs=1, **config))
    return model, result


def test_amp_off_is_the_float32_loop(cifar10_arrays):
    assert TrainConfig().amp == "off"                       # schema default
    plain, r_plain = one_epoch(cifar10_arrays)
    off, r_off = one_epoch(cifar10_arrays, amp="off")
    a, b = plain.state_dict(), off.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert r_plain.history[0]["train_loss"] == r_off.history[0]["train_loss"]


def test_bf16_on_the_cpu_trains_and_evaluates(cifar10_arrays):
    model, result = one_epoch(cifar10_arrays, amp="bf16")
    off, _ = one_epoch(cifar10_arrays)
    assert math.isfinite(result.history[0]["train_loss"]) and result.history[0]["train_loss"] > 0
    # autocast really ran: bf16 rounding moves the weights away from the float32 run's
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), off.parameters()))
    assert all(p.dtype == torch.float32 for p in model.parameters())   # master weights stay float32
    tests = {1: real_batches(cifar10_arrays, [0, 1], n=32)}
    acc = evaluate(model, 1, tests[1], amp="bf16")
    assert 0.0 <= acc <= 1.0 and evaluate_tasks(model, tests, amp="bf16") == {1: acc}
    with autocast(torch.device("cpu"), "bf16"):
        assert model(next(iter(tests[1]))[0], 1).dtype == torch.bfloat16


class GradNorms(Finetune):
    """Records the gradient norm each before_step hook sees."""

    def __init__(self):
        super().__init__()
        self.norms = []

    def before_step(self, model, task):
        self.norms.append(torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.parameters()
                                         if p.grad is not None)).item())


def test_fp16_hooks_see_unscaled_gradients(cifar10_arrays):
    off, fp16 = GradNorms(), GradNorms()
    one_epoch(cifar10_arrays, off)
    _, result = one_epoch(cifar10_arrays, fp16, amp="fp16")
    assert math.isfinite(result.history[0]["train_loss"])
    # the first step's gradients: the scaler multiplies the loss by 65536; unscaled they match float32's
    assert fp16.norms[0] == pytest.approx(off.norms[0], rel=0.05), (fp16.norms[:3], off.norms[:3])


def test_bad_amp_names_the_key():
    with pytest.raises(ValueError, match="training.amp"):
        autocast(torch.device("cpu"), "fp8")
    with autocast(torch.device("cpu"), False):            # YAML's unquoted `amp: off`
        assert not torch.is_autocast_enabled("cpu")
