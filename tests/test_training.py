"""The shared training loop, on-device augmentation and the LwF loss."""
import copy
import math

import pytest
import torch
from torch import nn
import torchvision.transforms.v2.functional as TF

from par.learners.strategies import Finetune, Regularize, RegularizeHead, lwf_soft_cross_entropy
from par.models import MultiHeadModel
from par.training import Batches, TrainConfig, augment_batch, augmentation_parameters, evaluate, fit

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def test_augmentation_matches_torchvision_image_by_image():
    x = torch.rand(6, 3, 32, 32)
    offsets, flips, factors = augmentation_parameters(6, 4, 63 / 255, torch.Generator().manual_seed(3))
    assert flips.any() and not flips.all()
    out = augment_batch(x, offsets, flips, factors, padding=4)
    for i in range(6):
        ref = TF.crop(TF.pad(x[i], [4]), int(offsets[i, 0]), int(offsets[i, 1]), 32, 32)
        if flips[i]:
            ref = TF.horizontal_flip(ref)
        ref = TF.adjust_brightness(ref, float(factors[i]))
        torch.testing.assert_close(out[i], ref)
    assert (factors >= 1 - 63 / 255).all() and (factors <= 1 + 63 / 255).all()


def test_lwf_loss_by_hand():
    # T = 2: teacher logits (2 ln 3, 0) -> softmax(z / 2) = (3/4, 1/4); uniform student -> ln 2.
    teacher = torch.tensor([[2 * math.log(3), 0.0]])
    assert lwf_soft_cross_entropy(torch.zeros(1, 2), teacher).item() == pytest.approx(math.log(2), abs=1e-6)
    student = torch.tensor([[0.0, 2 * math.log(3)]])   # (1/4, 3/4)
    expected = -(0.75 * math.log(0.25) + 0.25 * math.log(0.75))
    assert lwf_soft_cross_entropy(student, teacher).item() == pytest.approx(expected, abs=1e-4)


def tiny_model(n_classes=2, heads=(1,)):
    torch.manual_seed(0)
    return MultiHeadModel({"kind": "light_resnet18", "width": 8}, {t: n_classes for t in heads})


def task_batches(arrays, task_classes, shuffle, n=None, generator=None):
    labels = torch.from_numpy(arrays.train_labels)
    keep = torch.isin(labels, torch.tensor(task_classes)).nonzero().view(-1)[:n]
    local = torch.tensor([task_classes.index(int(c)) for c in labels[keep]])
    return Batches(torch.from_numpy(arrays.train_images)[keep], local, MEAN, STD, 16, torch.device("cpu"),
                   shuffle=shuffle, augment=shuffle, generator=generator)


def test_fit_restores_the_best_validation_snapshot(cifar10_arrays):
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    train = task_batches(cifar10_arrays, [0, 1], True, generator=g)
    val = task_batches(cifar10_arrays, [0, 1], False)
    result = fit(model, 1, Finetune(), train, val, TrainConfig(epochs=4, lr=0.05))
    accs = [h["val_accuracy"] for h in result.history]
    assert result.best_val_accuracy == max(accs) and result.best_epoch == accs.index(max(accs))
    assert evaluate(model, 1, val) == pytest.approx(result.best_val_accuracy)


class _Stopping(Finetune):
    early_stopping = True


def test_early_stopping_after_patience_epochs_without_improvement(cifar10_arrays):
    train = task_batches(cifar10_arrays, [0, 1], True, generator=torch.Generator().manual_seed(0))
    val = task_batches(cifar10_arrays, [0, 1], False)
    frozen = TrainConfig(epochs=10, lr=0.0, momentum=0.0, weight_decay=0.0, patience=2)
    # lr 0 in eval-free BN would still move running stats; keep BN in eval to make val acc constant
    class Still(_Stopping):
        def set_mode(self, model, task):
            model.eval()
    assert fit(tiny_model(), 1, Still(), train, val, frozen).epochs_run == 3
    assert fit(tiny_model(), 1, type("NoStop", (Still,), {"early_stopping": False})(), train, val,
               frozen).epochs_run == 10


def test_single_image_tail_batch_is_dropped_when_shuffling():
    images = torch.zeros(17, 32, 32, 3, dtype=torch.uint8)
    batches = Batches(images, torch.zeros(17, dtype=torch.long), MEAN, STD, 16, torch.device("cpu"), shuffle=True,
                      generator=torch.Generator().manual_seed(0))
    assert [len(y) for _, y in batches] == [16]
    plain = Batches(images, torch.zeros(17, dtype=torch.long), MEAN, STD, 16, torch.device("cpu"))
    assert [len(y) for _, y in plain] == [16, 1]


def test_regularize_head_changes_only_the_new_head(cifar10_arrays):
    model = tiny_model(heads=(1,))
    strategy = RegularizeHead()
    model = strategy.prepare(model, None, 2, 2, torch.device("cpu"))
    before = copy.deepcopy(model.state_dict())
    train = task_batches(cifar10_arrays, [2, 3], True, generator=torch.Generator().manual_seed(0))
    fit(model, 2, strategy, train, task_batches(cifar10_arrays, [2, 3], False), TrainConfig(epochs=2, lr=0.1))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"heads.2.weight", "heads.2.bias"}   # BN running stats included in state_dict


def old_head_drift(cifar10_arrays, strategy):
    """Mean change of task 1's predicted probabilities on task-1 images after learning task 2."""
    model = tiny_model(heads=(1,))
    fit(model, 1, Finetune(), task_batches(cifar10_arrays, [0, 1], True, generator=torch.Generator().manual_seed(0)),
        task_batches(cifar10_arrays, [0, 1], False), TrainConfig(epochs=3, lr=0.05))
    probe = task_batches(cifar10_arrays, [0, 1], False)
    model.eval()
    with torch.no_grad():
        reference = torch.cat([model(x, 1).softmax(1) for x, _ in probe])
    model = strategy.prepare(model, None, 2, 2, torch.device("cpu"))
    train = task_batches(cifar10_arrays, [2, 3], True, generator=torch.Generator().manual_seed(1))
    fit(model, 2, strategy, train, task_batches(cifar10_arrays, [2, 3], False), TrainConfig(epochs=3, lr=0.05))
    model.eval()
    with torch.no_grad():
        return (torch.cat([model(x, 1).softmax(1) for x, _ in probe]) - reference).abs().mean().item()


def test_lwf_keeps_old_head_outputs_closer_than_finetuning(cifar10_arrays):
    lwf, finetune = old_head_drift(cifar10_arrays, Regularize(lwf_lambda=10.0)), old_head_drift(cifar10_arrays, Finetune())
    assert lwf < 0.8 * finetune   # measured: 0.061 vs 0.093


class _Recorder(Finetune):
    """Records the loop's hook calls; zeroes the gradient in ``before_step``."""

    def __init__(self):
        self.calls = []

    def before_epoch(self, model, task, epoch, n_batches):
        self.calls.append(("before_epoch", epoch, n_batches))

    def before_step(self, model, task):
        self.calls.append(("before_step",))
        for p in model.parameters():
            if p.grad is not None:
                p.grad.zero_()

    def after_step(self, model, task):
        self.calls.append(("after_step",))

    def after_epoch(self, model, task, epoch, record):
        self.calls.append(("after_epoch", epoch, record["val_accuracy"]))


def test_hooks_run_in_order_and_a_gradient_hook_acts_before_the_step(cifar10_arrays):
    model = tiny_model()
    train = task_batches(cifar10_arrays, [0, 1], True, n=33, generator=torch.Generator().manual_seed(0))
    assert train.n_batches == 2          # 16 + 16; the single-image tail is dropped when shuffling
    assert task_batches(cifar10_arrays, [0, 1], False, n=33).n_batches == 3
    assert len(list(train)) == train.n_batches
    val = task_batches(cifar10_arrays, [0, 1], False, n=20)
    hooks = _Recorder()
    # weight decay 0 and zeroed gradients: SGD's step changes nothing.
    body_before = copy.deepcopy(model.body.state_dict())
    fit(model, 1, hooks, train, val, TrainConfig(epochs=2, lr=0.5, weight_decay=0.0))
    names = [c[0] for c in hooks.calls]
    assert names == ["before_epoch", "before_step", "after_step", "before_step", "after_step", "after_epoch"] * 2
    assert hooks.calls[0] == ("before_epoch", 0, 2) and hooks.calls[6] == ("before_epoch", 1, 2)
    for k, v in model.body.state_dict().items():
        if v.dtype.is_floating_point and "running" not in k:
            torch.testing.assert_close(v, body_before[k], msg=k)


# ---- the best-validation snapshot and early stopping (issue 13's fault injection) ----------

class _Bias(nn.Module):
    """Logits [b, 0] for every image: validation accuracy on class-0 images is 1 while b > 0."""

    def __init__(self, b: float):
        super().__init__()
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x, task):
        return torch.stack([self.b.expand(len(x)), torch.zeros(len(x))], 1)


class _PushDown:
    """Loss = b, so SGD (no momentum) moves b down by the epoch's learning rate each step."""

    def __init__(self, early_stopping: bool):
        self.early_stopping = early_stopping

    def parameters(self, model, task):
        return model.parameters()

    def set_mode(self, model, task):
        model.train()

    def loss(self, model, task, x, y):
        return model.b * 1.0, model(x, task)

    def before_epoch(self, *args):
        pass

    def before_step(self, *args):
        pass

    def after_step(self, *args):
        pass

    def after_epoch(self, *args):
        pass


def _one_batch():
    images = torch.zeros((2, 2, 2, 3), dtype=torch.uint8)
    return Batches(images, torch.zeros(2, dtype=torch.long), (0.0,) * 3, (1.0,) * 3, 2, torch.device("cpu"))


PUSH = dict(lr=0.1, momentum=0.0, weight_decay=0.0, grad_clip=100.0, augment=False)


def test_fit_ends_in_the_best_validation_state():
    # Cosine lr over 3 epochs: 0.1, 0.075, 0.025 -> b = 0.15, then 0.05 (val acc 1), -0.025, -0.05 (acc 0).
    model = _Bias(0.15)
    result = fit(model, 1, _PushDown(False), _one_batch(), _one_batch(), TrainConfig(epochs=3, **PUSH))
    assert [h["val_accuracy"] for h in result.history] == [1.0, 0.0, 0.0]
    assert (result.best_epoch, result.best_val_accuracy, result.epochs_run) == (0, 1.0, 3)
    assert model.b.item() == pytest.approx(0.05)            # epoch 0's state, not the last (-0.05)
    last = _Bias(0.15)
    fit(last, 1, _PushDown(False), _one_batch(), _one_batch(), TrainConfig(epochs=3, **PUSH), keep_best=False)
    assert last.b.item() == pytest.approx(-0.05)


def test_early_stopping_only_where_the_strategy_asks_for_it():
    from par.learners.strategies import STRATEGIES

    config = TrainConfig(epochs=3, patience=1, **PUSH)
    stops = fit(_Bias(0.15), 1, _PushDown(True), _one_batch(), _one_batch(), config)
    runs_on = fit(_Bias(0.15), 1, _PushDown(False), _one_batch(), _one_batch(), config)
    assert (stops.epochs_run, runs_on.epochs_run) == (2, 3)   # epoch 1 is not better: stop after it
    # SPEC §5: only tasks that allocate an expert stop early
    assert {n for n, cls in STRATEGIES.items() if cls.early_stopping} == {"allocate-search", "allocate-reuse"}
