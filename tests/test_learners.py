"""Strategies and methods from their registries, and learning a task end to end on real images."""
import pytest
import torch

from par.streams import build_stream
from par.cells import DARTS_V2
from par.learners import get_method, get_strategy, learn_task
from par.models import load_model, save_model
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


@pytest.fixture(scope="module")
def stream(cifar10_arrays):
    return build_stream("cifar10-5", cifar10_arrays, 0)


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
    from par.models import MultiHeadModel
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
