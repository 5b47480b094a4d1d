"""Strategies and methods from their registries, and learning a task end to end on real images."""
import pytest
import torch

from conftest import ReversedTrainIds
from par.nets.genotypes import DARTS_V2
from par.learners.job import learn_task
from par.learners.methods import get_method
from par.learners.strategies import get_strategy
from par.nets.model import load_model, save_model
from par.planning import PlanSettings, plan_tasks
from par.training import TrainConfig

import numpy as np

def make_plan(distances, n_train, *, seed=0, **settings):
    """plan_tasks with the config schema's planning settings, ``settings`` overriding some."""
    return plan_tasks(distances, n_train, PlanSettings.from_schema(**settings), seed=seed)



def test_registries_name_the_choices():
    with pytest.raises(KeyError, match="finetune"):
        get_method("replay")
    with pytest.raises(KeyError, match="regularize-head"):
        get_strategy("replay")


def test_baseline_chains():
    finetune = get_method("finetune").assignments(3)
    assert [a["predecessor"] for a in finetune] == [None, 1, 2]
    assert finetune[2]["group_tasks"] == [1, 2, 3]
    independent = get_method("independent").assignments(3)
    assert [a["predecessor"] for a in independent] == [None, None, None]
    assert [a["group_tasks"] for a in independent] == [[1], [2], [3]]


def test_par_assignments_come_from_the_plan():
    d = np.zeros((3, 3))
    d[2, :2] = 3.0   # task 3 far from everything
    plan = make_plan(d, [100, 100, 100])
    a = get_method("par").assignments(3, plan)
    assert [x["strategy"] for x in a] == ["allocate-search", "regularize", "allocate-search"]
    assert a[2]["group"] == 2 and a[2]["genotype_source"] == 3
    with pytest.raises(ValueError, match="plan"):
        get_method("par").assignments(3, None)


EXPERT = {"kind": "expert", "genotype": DARTS_V2.to_json(), "channels": 4, "n_layers": 3, "stem_multiplier": 3}
CONFIG = TrainConfig(epochs=1, batch_size=16)


def test_a_group_learned_task_after_task(stream, cifar10_arrays, tmp_path):
    """allocate-search, then regularize (LwF), then regularize-head, through saved states."""
    first = {"task": 1, "group": 1, "strategy": "allocate-search", "predecessor": None, "group_tasks": [1],
             "genotype_source": "darts_v2"}
    model, record = learn_task(first, stream, cifar10_arrays, predecessor=None, body_spec=EXPERT,
                               train_config=CONFIG, seed=0)
    assert set(record["test_accuracy"]) == {"1"} and 0.0 <= record["test_accuracy"]["1"] <= 1.0
    assert record["n_train"] == 72 and record["epochs_run"] == 1
    save_model(tmp_path / "task1.pt", model)

    second = {"task": 2, "group": 1, "strategy": "regularize", "predecessor": 1, "group_tasks": [1, 2],
              "genotype_source": None}
    model2, record2 = learn_task(second, stream, cifar10_arrays, predecessor=load_model(tmp_path / "task1.pt"),
                                 body_spec=None, train_config=CONFIG,
                                 strategy_options={"regularize": {"lwf_lambda": 1.0, "lwf_temperature": 2.0}},
                                 seed=0)
    assert set(record2["test_accuracy"]) == {"1", "2"}
    assert record2["n_params"] == record["n_params"] + (4 * 4 * 2 + 2)   # one more head of 2 classes
    save_model(tmp_path / "task2.pt", model2)

    third = {"task": 3, "group": 1, "strategy": "regularize-head", "predecessor": 2, "group_tasks": [1, 2, 3],
             "genotype_source": None}
    before = load_model(tmp_path / "task2.pt")
    model3, record3 = learn_task(third, stream, cifar10_arrays, predecessor=load_model(tmp_path / "task2.pt"),
                                 body_spec=None, train_config=CONFIG, seed=0)
    for name, tensor in before.body.state_dict().items():
        torch.testing.assert_close(model3.body.state_dict()[name], tensor)   # expert untouched
    assert record3["test_accuracy"]["1"] == pytest.approx(record2["test_accuracy"]["1"])


def test_finetune_starts_fresh_then_continues(stream, cifar10_arrays):
    body = {"kind": "light_resnet18", "width": 8}
    a1, a2 = get_method("finetune").assignments(5)[:2]
    model, _ = learn_task(a1, stream, cifar10_arrays, predecessor=None, body_spec=body, train_config=CONFIG,
                          seed=0)
    model2, record = learn_task(a2, stream, cifar10_arrays, predecessor=model, body_spec=None, train_config=CONFIG,
                                seed=0)
    assert model2.tasks == [1, 2] and set(record["test_accuracy"]) == {"1", "2"}


def test_same_seed_same_numbers_on_cpu(stream, cifar10_arrays):
    a = get_method("independent").assignments(5)[0]
    body = {"kind": "light_resnet18", "width": 8}
    runs = [learn_task(a, stream, cifar10_arrays, predecessor=None, body_spec=body, train_config=CONFIG,
                       seed=7)[1] for _ in range(2)]
    assert runs[0]["history"][0]["train_loss"] == runs[1]["history"][0]["train_loss"]
    assert runs[0]["test_accuracy"] == runs[1]["test_accuracy"]


def test_regularize_trains_the_expert_and_the_new_head_only():
    """Authors' requires_grad_task: the group's old heads are frozen (no gradient, no weight
    decay, no momentum) while LwF distils through them; the expert and the new head learn."""
    from par.nets.model import MultiHeadModel
    from par.training import Batches, fit

    torch.manual_seed(0)
    model = MultiHeadModel({"kind": "light_resnet18", "width": 8}, heads={1: 3, 2: 2})
    old_heads = {u: {k: v.clone() for k, v in model.head(u).state_dict().items()} for u in (1, 2)}
    body = {k: v.clone() for k, v in model.body.state_dict().items()}
    strategy = get_strategy("regularize")
    model = strategy.prepare(model, None, 3, 4, torch.device("cpu"))
    new_head = {k: v.clone() for k, v in model.head(3).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 16, 16, 3), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 4, (32,), generator=generator)
    config = TrainConfig(epochs=2, batch_size=8, weight_decay=0.1)
    train = Batches(images, labels, (0.5,) * 3, (0.25,) * 3, 8, torch.device("cpu"), shuffle=True,
                    augment=True, config=config, generator=generator)
    val = Batches(images, labels, (0.5,) * 3, (0.25,) * 3, 32, torch.device("cpu"))
    fit(model, 3, strategy, train, val, config)
    for u in (1, 2):
        for k, v in model.head(u).state_dict().items():
            assert torch.equal(v, old_heads[u][k]), f"old head {u} {k} changed"
    assert not torch.equal(model.head(3).weight, new_head["weight"])
    assert not torch.equal(model.body.state_dict()["features.0.weight"], body["features.0.weight"])


def test_prepare_places_the_model_on_the_device_and_needs_a_body_spec_for_a_fresh_one():
    body = {"kind": "light_resnet18", "width": 2}
    meta = torch.device("meta")   # stands for an accelerator
    model = get_strategy("finetune").prepare(None, body, 1, 2, meta)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    cpu_model = get_strategy("finetune").prepare(None, body, 1, 2, torch.device("cpu"))
    model = get_strategy("finetune").prepare(cpu_model, None, 2, 2, meta)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    with pytest.raises(ValueError, match="^strategy independent starts a new model here and needs a body spec$"):
        get_strategy("independent").prepare(None, None, 1, 2, torch.device("cpu"))


def test_regularize_defaults_and_frozen_parts():
    """docs/spec.md §5: λ = 1, T = 2; the teacher and the group's old heads are frozen
    (requires_grad False); regularize-head freezes everything but the new head."""
    from par.nets.model import MultiHeadModel

    strategy = get_strategy("regularize")
    assert (strategy.distillation_weight, strategy.distillation_temperature) == (1.0, 2.0)
    model = strategy.prepare(MultiHeadModel({"kind": "light_resnet18", "width": 2}, heads={1: 2}), None, 2, 2,
                             torch.device("cpu"))
    assert not any(p.requires_grad for p in strategy.teacher.parameters())
    assert not any(p.requires_grad for p in model.head(1).parameters())
    assert all(p.requires_grad for p in [*model.body.parameters(), *model.head(2).parameters()])
    model = get_strategy("regularize-head").prepare(MultiHeadModel({"kind": "light_resnet18", "width": 2},
                                                                   heads={1: 2}), None, 2, 2, torch.device("cpu"))
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["heads.2.weight", "heads.2.bias"]


def test_sample_ids_are_sorted_only_when_read_from_an_images_h5_path():
    from types import SimpleNamespace

    from par.streams.tasks import sample_ids

    task = SimpleNamespace(dataset="d", indices=lambda split: np.array([5, 1, 3], dtype=np.int32))
    for images in ("images.h5", {"d": "images.h5"}):
        ids = sample_ids(images, task, "train")
        assert ids.tolist() == [1, 3, 5] and ids.dtype == np.int64
    for images in (object(), {"d": object()}):
        ids = sample_ids(images, task, "train")
        assert ids.tolist() == [5, 1, 3] and ids.dtype == np.int64


def test_learn_task_hands_the_strategy_its_task_and_records_it(stream, cifar10_arrays, monkeypatch, caplog,
                                                                tmp_path):
    """learn_task with a recording strategy (stubbed compile, spied Batches and evaluation):
    what each hook receives, the log lines and every record field, for a first task with a
    search and an architecture, a second whose search already trained (no fit), a third
    without architecture, read from an images.h5 path with its training ids listed unsorted."""
    import copy
    import logging
    import time

    from par.learners import job as task_module
    from par.learners.context import SearchResult
    from par.learners.strategies import Finetune
    from par.streams.tasks import sample_ids
    from par.nets.model import count_parameters
    from par.training import FitResult

    class Recorder(Finetune):
        def __init__(self, search_result, architecture):
            self.search_result, self.arch, self.seen = search_result, architecture, {}

        def prepare(self, predecessor, body_spec, task, n_classes, device):
            self.seen["device"] = device
            self.seen["model"] = super().prepare(predecessor, body_spec, task, n_classes, device)
            return self.seen["model"]

        def bind(self, context):
            self.seen["context"] = context

        def search(self, model, task, train, val, config):
            self.seen["search"] = (model, task, train, val, config)
            return copy.copy(self.search_result)

        def after_task(self, model, task, train):
            self.seen["after_task"] = (model, task, train)
            return {}

        def record_fields(self, model):
            self.seen["record_fields"] = model
            return {"extra": 1}

        def architecture(self, model, task):
            self.seen["architecture"] = (model, task)
            return self.arch

    spied = {"devices": [], "compiled": [], "amp": []}
    real_batches, real_evaluate = task_module.Batches, task_module.evaluate_tasks

    def batches(*args, **kwargs):
        spied["devices"].append(args[5])
        return real_batches(*args, **kwargs)

    def evaluate_tasks(model, tests, chunk, amp="off"):
        spied["amp"].append(amp)
        return real_evaluate(model, tests, chunk, amp)

    monkeypatch.setattr(task_module, "Batches", batches)
    monkeypatch.setattr(task_module, "evaluate_tasks", evaluate_tasks)
    monkeypatch.setattr(task_module, "compile_body", spied["compiled"].append)
    caplog.set_level(logging.INFO, logger="par.learners.job")
    config = TrainConfig(epochs=1, batch_size=16, augment=True, compile=True, amp="bf16")
    body = {"kind": "light_resnet18", "width": 2}
    cpu = torch.device("cpu")

    def run(recorder, t, predecessor, tasks=stream, images=cifar10_arrays, **kwargs):
        monkeypatch.setattr(task_module, "get_strategy", lambda name, **options: recorder)
        assignment = {"task": t, "group": 1, "strategy": "finetune", "predecessor": t - 1 or None,
                      "group_tasks": list(range(1, t + 1)), "genotype_source": None}
        start = time.perf_counter()
        model, record = learn_task(assignment, tasks, images, predecessor=predecessor,
                                   body_spec=body if predecessor is None else None, train_config=config,
                                   device=cpu, **kwargs)
        return model, record, time.perf_counter() - start

    first = Recorder(SearchResult({"tried": 2}), {"modules": ["new"]})
    model1, record, wall = run(first, 1, None)            # seed omitted: 0
    seen, context = first.seen, first.seen["context"]
    assert seen["device"] == cpu and seen["model"] is model1 and spied["compiled"] == [model1]
    assert context.seed == 0 and context.device == cpu and context.task is stream.task(1)
    assert context.config is config and context.train.config is config
    assert context.train.shuffle is True and context.train.augment is True
    assert np.array_equal(context.train_ids, sample_ids(cifar10_arrays, stream.task(1), "train"))
    assert spied["devices"] == [cpu, cpu, cpu] and spied["amp"] == ["bf16"]   # train, val, test of task 1
    model, t, train, val, cfg = seen["search"]
    assert (model, t, train, cfg) == (model1, 1, context.train, config) and len(val.labels) == 8
    assert seen["after_task"] == (model1, 1, context.train) and seen["architecture"] == (model1, 1)
    assert seen["record_fields"] is model1
    n_params = count_parameters(model1)
    assert set(record) == {"task", "group", "strategy", "predecessor", "group_tasks", "genotype_source",
                           "test_accuracy", "val_accuracy", "best_epoch", "epochs_run", "n_params", "n_carried",
                           "n_train", "compiled", "extra", "seconds", "train_seconds", "history", "architecture",
                           "n_params_added", "search", "search_seconds", "trained_in_search"}
    assert record["compiled"] is True and record["epochs_run"] == 1 and record["best_epoch"] == 0
    assert record["val_accuracy"] == record["history"][0]["val_accuracy"]
    assert record["architecture"] == {"modules": ["new"]} and record["search"] == {"tried": 2}
    assert record["n_params_added"] == record["n_params"] == n_params and record["trained_in_search"] is False
    assert 0 <= record["search_seconds"] <= record["train_seconds"] <= record["seconds"] <= wall
    n_params = count_parameters(model1)
    messages = [r.getMessage() for r in caplog.records if r.name == "par.learners.job"]
    assert messages == [f"task 1 (finetune): 72 train / 8 val images, 2 classes, {n_params} parameters",
                        f"after task 1: test accuracy on task 1 = {record['test_accuracy']['1']:.4f}"]

    trained = FitResult(0.25, 3, 4, [{"val_accuracy": 0.25}])
    second = Recorder(SearchResult({"tried": 3}, fit=trained), {"modules": ["reuse"]})
    model2, record2, _ = run(second, 2, model1, seed=5)
    assert second.seen["context"].seed == 5
    assert (record2["val_accuracy"], record2["best_epoch"], record2["epochs_run"], record2["history"]) == \
        (0.25, 3, 4, [{"val_accuracy": 0.25}])                  # the search's fit, not a new one
    assert record2["search"] == {"tried": 3} and record2["trained_in_search"] is True
    assert record2["n_params_added"] == record2["n_params"] - n_params == 2 * 2 + 2

    import h5py

    with h5py.File(tmp_path / "images.h5", "w") as f:
        for split in ("train", "test"):
            f[f"{split}/images"] = getattr(cifar10_arrays, f"{split}_images")
            f[f"{split}/labels"] = getattr(cifar10_arrays, f"{split}_labels")
    third = Recorder(None, None)
    model3, record3, _ = run(third, 3, model2, tasks=ReversedTrainIds(stream, 3), images=str(tmp_path / "images.h5"))
    assert not {"architecture", "n_params_added", "search", "search_seconds", "trained_in_search"} & set(record3)
    assert third.seen["context"].train_ids.tolist() == sorted(stream.task(3).train.tolist())   # the order read


def test_baseline_assignments_by_hand():
    """docs/spec.md §7: finetune (and the baselines that chain like it) is one group
    of every task so far, each task continuing from the one before; independent is
    one group per task, each from scratch.  Whole dicts, so a renamed key or a wrong
    group fails."""
    from par.learners.methods import get_method

    assert get_method("finetune").assignments(3) == [
        {"task": 1, "group": 1, "strategy": "finetune", "predecessor": None, "group_tasks": [1], "genotype_source": None},
        {"task": 2, "group": 1, "strategy": "finetune", "predecessor": 1, "group_tasks": [1, 2], "genotype_source": None},
        {"task": 3, "group": 1, "strategy": "finetune", "predecessor": 2, "group_tasks": [1, 2, 3],
         "genotype_source": None}]
    assert get_method("ewc").assignments(2)[1] == {"task": 2, "group": 1, "strategy": "ewc", "predecessor": 1,
                                                  "group_tasks": [1, 2], "genotype_source": None}
    assert get_method("independent").assignments(2) == [
        {"task": 1, "group": 1, "strategy": "independent", "predecessor": None, "group_tasks": [1], "genotype_source": None},
        {"task": 2, "group": 2, "strategy": "independent", "predecessor": None, "group_tasks": [2], "genotype_source": None}]


def test_task_record_of_a_growing_task_whose_search_found_nothing():
    """A strategy with an architecture but no search this task (PN, the first task of LtG
    and MNTDP): the record's ``search`` is None, nothing was trained in a search, and the
    parameters added are the model's minus those before the task."""
    import time
    from types import SimpleNamespace

    from par.learners.job import LearnedTask, task_record
    from par.nets.model import MultiHeadModel, count_parameters
    from par.training import FitResult

    model = MultiHeadModel({"kind": "light_resnet18", "width": 2}, heads={1: 2})
    strategy = SimpleNamespace(record_fields=lambda m: {}, architecture=lambda m, t: {"column": t})
    setup = SimpleNamespace(number=1, strategy=strategy, model=model, train=SimpleNamespace(labels=[0, 1, 1]),
                            n_params_before=10, start=time.perf_counter())
    learned = LearnedTask(FitResult(0.5, 0, 1, [{"val_accuracy": 0.5}]), None, 0.25, 1.5)
    record = task_record({"task": 1}, setup, learned, {1: 0.75}, TrainConfig(epochs=1))
    assert record["search"] is None and record["trained_in_search"] is False and record["search_seconds"] == 0.25
    assert record["architecture"] == {"column": 1} and record["n_params_added"] == count_parameters(model) - 10
    assert record["test_accuracy"] == {"1": 0.75} and record["n_train"] == 3 and record["train_seconds"] == 1.5
