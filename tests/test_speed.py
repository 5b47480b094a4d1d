"""The hot path's speed-ups change no number: input layout, chunked and one-pass
evaluation, the CPU allocator setting (README, Speed)."""
import copy

import pytest
import torch

from par.nets.genotypes import DARTS_V2
from par.infra.devices import eval_batch_size, job_device, tune_cpu_allocator
from par.learners.strategies import Finetune
from par.nets.model import MultiHeadModel
from par.nets.model import compile_body
from par.training import Batches, TrainConfig, evaluate, evaluate_tasks, fit, to_float_images

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def real_batches(arrays, classes, shuffle=False, augment=False, batch_size=16, generator=None, n=None):
    labels = torch.from_numpy(arrays.train_labels)
    keep = torch.isin(labels, torch.tensor(classes)).nonzero().view(-1)[:n]
    local = torch.tensor([classes.index(int(c)) for c in labels[keep]])
    return Batches(torch.from_numpy(arrays.train_images)[keep], local, MEAN, STD, batch_size, torch.device("cpu"),
                   shuffle=shuffle, augment=augment, config=TrainConfig(), generator=generator)


def expert_model(heads):
    torch.manual_seed(0)
    spec = {"kind": "expert", "genotype": DARTS_V2.to_json(), "channels": 4, "n_layers": 3}
    return MultiHeadModel(spec, {t: 2 for t in heads})


def test_batches_reach_the_network_channels_last(cifar10_arrays):
    images = torch.from_numpy(cifar10_arrays.train_images[:5])      # (5, 32, 32, 3) uint8
    x = to_float_images(images)
    assert x.shape == (5, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous()
    assert torch.equal(x, images.permute(0, 3, 1, 2).float() / 255.0)
    for augment in (False, True):
        batch, _ = next(iter(real_batches(cifar10_arrays, [0, 1], shuffle=augment, augment=augment,
                                          generator=torch.Generator().manual_seed(0))))
        assert batch.is_contiguous(memory_format=torch.channels_last), f"augment={augment}"


def test_chunked_and_one_pass_evaluation_equal_per_task_evaluation(cifar10_arrays):
    model = expert_model((1, 2, 3))
    tests = {1: real_batches(cifar10_arrays, [0, 1], n=30), 2: real_batches(cifar10_arrays, [2, 3], batch_size=7, n=30),
             3: real_batches(cifar10_arrays, [4, 5], n=30)}
    expected = {}
    model.eval()
    with torch.no_grad():  # accuracy by hand: one image at a time through body and head u
        for u, b in tests.items():
            hits = [int(model(b.images[i:i + 1].permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.25), u)
                        .argmax(1) == b.labels[i]) for i in range(len(b))]
            expected[u] = sum(hits) / len(hits)
    assert len(set(expected.values())) > 1                # the heads differ, so a wrong head would show
    for u, b in tests.items():
        assert evaluate(model, u, b) == expected[u]
        assert evaluate(model, u, b, chunk=4) == expected[u]
    assert evaluate_tasks(model, tests, chunk=13) == expected   # chunks span tasks (30 images per task)
    assert evaluate_tasks(model, tests, chunk=1000) == expected


def test_augmented_evaluation_does_not_depend_on_the_chunk(cifar10_arrays):
    model = expert_model((1,))
    accuracies = {chunk: evaluate(model, 1, real_batches(cifar10_arrays, [0, 1], augment=True, batch_size=50,
                                                         generator=torch.Generator().manual_seed(4)), chunk)
                  for chunk in (None, 7, 50)}
    assert len(set(accuracies.values())) == 1


def test_cpu_allocator_setting_changes_no_number(cifar10_arrays):
    def one_epoch():
        model = expert_model((1,))
        train = real_batches(cifar10_arrays, [0, 1], shuffle=True, augment=True,
                             generator=torch.Generator().manual_seed(1))
        fit(model, 1, Finetune(), train, real_batches(cifar10_arrays, [0, 1]), TrainConfig(epochs=1))
        return copy.deepcopy(model.state_dict())

    before = one_epoch()
    assert tune_cpu_allocator()            # glibc (the CI image); False elsewhere
    after = one_epoch()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_job_device_sets_threads_at_once_and_claims_the_device_when_entered():
    """The workflow's job preamble: torch's threads set by the call, the device by entering
    the returned context (config keys device, gpu_slots_per_device, cudnn_benchmark)."""
    threads = torch.get_num_threads()
    config = {"device": "cpu", "gpu_slots_per_device": 1, "cudnn_benchmark": False}
    try:
        slot = job_device(config, 1, tune_allocator=False)
        assert torch.get_num_threads() == 1
        with slot as device:
            assert device == torch.device("cpu")
        with pytest.raises(ValueError, match="device must be auto, cpu or cuda, not 'gpu'"):
            with job_device({**config, "device": "gpu"}, 1, tune_allocator=False):
                pass
        with pytest.raises(KeyError, match="gpu_slots_per_device"):
            job_device({"device": "cpu", "cudnn_benchmark": False}, 1)
    finally:
        torch.set_num_threads(threads)


def test_eval_batch_size_per_device():
    assert eval_batch_size(torch.device("cpu")) == 100
    assert eval_batch_size(torch.device("cuda", 0)) == 500
    assert eval_batch_size(torch.device("cpu"), {"cpu": 64}) == 64


def test_compiled_body_traces_and_trains_as_the_eager_one(cifar10_arrays):
    """training.compile on the expert: dynamo traces the body (no error, state_dict keys
    unchanged); with the ``eager`` backend (the traced graph run by PyTorch's own kernels)
    one epoch gives the eager run's numbers, so the switch changes only code generation."""
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = expert_model((1,))
        keys = list(model.state_dict())
        if compiled:
            compile_body(model, backend="eager")
        train = real_batches(cifar10_arrays, [0, 1], shuffle=True, augment=True, n=64,
                             generator=torch.Generator().manual_seed(1))
        result = fit(model, 1, Finetune(), train, real_batches(cifar10_arrays, [0, 1], n=32),
                     TrainConfig(epochs=1, compile=compiled))
        assert list(model.state_dict()) == keys
        runs.append((result.history[0]["train_loss"], result.history[0]["val_accuracy"],
                     [p.detach().clone() for p in model.parameters()]))
    (loss_a, val_a, params_a), (loss_b, val_b, params_b) = runs
    assert loss_a == pytest.approx(loss_b, rel=1e-5) and val_a == val_b
    assert all(torch.allclose(p, q, atol=1e-5) for p, q in zip(params_a, params_b))
