"""Stream specs (par.streams.spec), transforms (par.streams.transforms) and the vectorised distance matrix.

The datasets are small generated ``images.h5`` files in the layout every stage
reads (decoded arrays at native shape, written with par.streams.datasets.catalog.save_images);
the on-disk source formats (torchvision files, LEAF JSON, …) belong to
par.streams.datasets and its tests, so these fakes start from decoded arrays.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from par.streams.class_orders import cifar100_validation_split
from par.streams.datasets.catalog import ImageArrays, save_images
from par.relatedness.distances import class_prototypes, distance_matrix, nearest_prototype_kl
from par.streams.datasets.catalog import decode, locate_source, register_image_folder
from par.streams.spec import (StreamSpecError, load_spec, prepare_task, resolve_tasks, shipped_streams,
                         task_normalisation, task_users)
from par.streams.tasks import read_task_pixels, task_from_json
from par.streams.transforms import apply_transforms, channel_statistics, rainbow

# dataset -> (classes, train per class, test per class, image shape (H, W, C))
FAKES = {
    "cifar10": (10, 1600, 1000, (32, 32, 3)),
    "cifar100": (100, 500, 100, (32, 32, 3)),
    "mnist": (10, 1600, 1000, (28, 28, 1)),
    "fashion-mnist": (10, 1600, 1000, (28, 28, 1)),
    "svhn": (10, 1600, 1000, (32, 32, 3)),
    "dtd": (47, 80, 40, (40, 40, 3)),
}


def fake_labels(dataset):
    k, n_train, n_test, _ = FAKES[dataset]
    return np.repeat(np.arange(k), n_train), np.repeat(np.arange(k), n_test), [f"{dataset}-{c}" for c in range(k)]


def write_fake(path: Path, dataset: str, *, users: int = 0) -> Path:
    """A decoded dataset whose pixel values encode (class, index) so tests can check them."""
    train_labels, test_labels, names = fake_labels(dataset)
    shape = FAKES[dataset][3]
    rng = np.random.default_rng(0)
    arrays = ImageArrays(rng.integers(0, 256, (len(train_labels), *shape), dtype=np.uint8), train_labels,
                         rng.integers(0, 256, (len(test_labels), *shape), dtype=np.uint8), test_labels, names, "fake")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_images(path, arrays)
    return path


def prepare_all(name, seed, caps=None):
    out = {}
    for t in resolve_tasks(load_spec(name), seed):
        out[t["task"]] = prepare_task(t, *fake_labels(t["dataset"]), earlier=out, caps=caps)
    return out


def per_class(prepared, split, dataset_labels):
    labels = dataset_labels[np.asarray(prepared[split], dtype=int)]
    return {c: int((labels == c).sum()) for c in prepared["classes"]}


def test_every_shipped_benchmark_is_a_valid_spec():
    expected = {"cifar10-5": 5, "cifar100-10": 10, "cifar100-20": 20, "cifar100-coarse": 20, "miniimagenet-20": 20,
                "ctrl-s-minus": 6, "ctrl-s-plus": 6, "ctrl-s-in": 6, "ctrl-s-out": 6, "ctrl-s-pl": 5,
                "ctrl-s-long": 100, "mixed-cifar100-fceleba": 20}
    assert {n: load_spec(n).n_tasks for n in shipped_streams()} == expected


def test_ctrl_s_minus_sizes_classes_and_pools():
    tasks = prepare_all("ctrl-s-minus", seed=3)
    assert [t["dataset"] for t in tasks.values()] == ["cifar10", "mnist", "dtd", "fashion-mnist", "svhn", "cifar10"]
    train_labels, test_labels, _ = fake_labels("cifar10")
    assert sorted(tasks[1]["classes"]) == list(range(10))
    assert set(per_class(tasks[1], "train", train_labels).values()) == {400}
    assert set(per_class(tasks[1], "val", train_labels).values()) == {200}
    assert set(per_class(tasks[1], "test", test_labels).values()) == {1000}
    assert tasks[6]["classes"] == tasks[1]["classes"]  # the first task's classes again, same labels
    assert set(per_class(tasks[6], "train", train_labels).values()) == {40}
    assert set(per_class(tasks[6], "val", train_labels).values()) == {20}
    assert len(tasks[3]["classes"]) == 10 and max(tasks[3]["classes"]) < 47  # 10 of DTD's 47
    assert set(per_class(tasks[3], "val", fake_labels("dtd")[0]).values()) == {20}
    for t in tasks.values():
        assert not set(t["train"]) & set(t["val"])
    # validation images come from CTrL's fixed pools (split seed 17), whatever the run seed
    other = prepare_all("ctrl-s-minus", seed=4)
    pool = set(tasks[1]["val"]) | set(other[1]["val"]) | set(tasks[6]["val"]) | set(other[6]["val"])
    assert len(pool) <= 500 * 10
    assert not pool & (set(tasks[1]["train"]) | set(other[6]["train"]))


def test_streams_are_seeded_and_reproducible():
    a, b, c = prepare_all("ctrl-s-minus", 0), prepare_all("ctrl-s-minus", 0), prepare_all("ctrl-s-minus", 1)
    assert a == b
    assert a[1]["classes"] != c[1]["classes"] or a[1]["train"] != c[1]["train"]


def test_ctrl_s_plus_pl_and_in_sizes():
    plus = prepare_all("ctrl-s-plus", 0)
    assert [t["n_train"] for t in plus.values()] == [400] * 5 + [4000]
    pl = prepare_all("ctrl-s-pl", 0)
    assert [t["dataset"] for t in pl.values()] == ["mnist", "dtd", "fashion-mnist", "svhn", "cifar10"]
    assert [t["n_train"] for t in pl.values()] == [400] * 4 + [4000]
    s_in = prepare_all("ctrl-s-in", 0)
    assert s_in[1]["transform"] == [{"rainbow": "red"}] and s_in[6]["transform"] == [{"rainbow": "green"}]
    assert s_in[6]["classes"] == s_in[1]["classes"] and (s_in[6]["n_train"], s_in[6]["n_val"]) == (50, 30)


def test_ctrl_s_out_permutes_every_label_of_the_first_task():
    tasks = prepare_all("ctrl-s-out", 0)
    first, last = task_from_json({**tasks[1], "mean": [0] * 3, "std": [1] * 3}), \
        task_from_json({**tasks[6], "mean": [0] * 3, "std": [1] * 3})
    assert last.classes == first.classes
    ids = np.asarray(first.classes)
    relabelled = last.local_labels(ids)
    assert sorted(relabelled) == list(range(10)) and (relabelled != first.local_labels(ids)).all()


def test_ctrl_s_long_phases_datasets_and_cifar100_cap():
    resolved = resolve_tasks(load_spec("ctrl-s-long"), 0)
    big, tiny = {"train": 1000, "val": 500, "test": 1000}, {"train": 5, "val": 3, "test": 1000}
    assert all(t["sizes"] in (big, tiny) for t in resolved)
    assert all(t["sizes"] == tiny for t in resolved[66:])
    assert any(t["sizes"] == big for t in resolved[:33])
    assert {t["dataset"] for t in resolved} == {"mnist", "svhn", "cifar10", "fashion-mnist", "cifar100"}
    tasks = prepare_all("ctrl-s-long", 0)
    assert all(len(t["classes"]) == 5 for t in tasks.values())
    totals = {(t["n_train"], t["n_val"]) for t in tasks.values()}
    # the authors' val cap {5000: 2500, 25: 15, 2250: 250}: CIFAR-100's pool holds 50 val images per class
    assert totals <= {(5000, 2500), (25, 15), (2250, 250)} and (25, 15) in totals
    cifar100_big = [t for t in tasks.values() if t["dataset"] == "cifar100" and t["sizes"] == big]
    assert all((t["n_train"], t["n_val"]) == (2250, 250) for t in cifar100_big)


def test_cifar_benchmarks_keep_the_authors_class_orders():
    resolved = resolve_tasks(load_spec("cifar10-5"), 0)
    order = np.random.RandomState(0).permutation(5)
    assert [t["classes"] for t in resolved] == [[2 * k, 2 * k + 1] for k in order]
    tasks = prepare_all("cifar100-10", 0)
    assert sorted(c for t in tasks.values() for c in t["classes"]) == list(range(100))
    train_labels, test_labels, _ = fake_labels("cifar100")
    assert set(per_class(tasks[1], "train", train_labels).values()) == {450}
    assert set(per_class(tasks[1], "val", train_labels).values()) == {50}
    assert set(per_class(tasks[1], "test", test_labels).values()) == {100}
    # the authors' CIFAR-100 validation draw over the whole train split
    split = cifar100_validation_split(train_labels, 0)
    for t in (1, 10):
        assert tasks[t]["val"] == sorted(int(i) for c in tasks[t]["classes"] for i in split[c][0])
        assert tasks[t]["train"] == sorted(int(i) for c in tasks[t]["classes"] for i in split[c][1])


def test_cifar100_coarse_one_task_per_superclass():
    resolved = resolve_tasks(load_spec("cifar100-coarse"), 0)
    assert sorted(c for t in resolved for c in t["classes"]) == list(range(100))
    assert [4, 30, 55, 72, 95] in [t["classes"] for t in resolved]  # aquatic mammals
    assert [t["classes"] for t in resolved] != [t["classes"] for t in resolve_tasks(load_spec("cifar100-coarse"), 1)]


def test_miniimagenet_carves_test_images_from_a_single_split():
    labels = np.repeat(np.arange(100), 600)
    resolved = resolve_tasks(load_spec("miniimagenet-20"), 0)
    assert sorted(c for t in resolved for c in t["classes"]) == list(range(100))
    t = prepare_task(resolved[0], labels, np.zeros(0, np.int64), [str(c) for c in range(100)])
    assert (t["n_train"], t["n_val"], t["n_test"]) == (5 * 480, 5 * 60, 5 * 60)
    assert not set(t["train"]) & set(t["test"]) and not set(t["val"]) & set(t["test"])
    assert t["normalisation"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def test_mixed_cifar100_fceleba_users_and_interleaving(tmp_path):
    resolved = resolve_tasks(load_spec("mixed-cifar100-fceleba"), 0)
    assert sorted(t["dataset"] for t in resolved) == ["cifar100"] * 10 + ["fceleba"] * 10
    assert [t["dataset"] for t in resolved] != [t["dataset"] for t in resolve_tasks(load_spec("mixed-cifar100-fceleba"), 1)]
    cifar = [t for t in resolved if t["dataset"] == "cifar100"]
    assert sorted(t["classes"] for t in cifar) == [list(range(10 * k, 10 * k + 10)) for k in range(10)]
    # F-CelebA as par.streams.datasets stores it: user indices into string-ordered user_names ("u10" < "u2")
    users = np.asarray([f"u{u}" for u in range(12) for _ in range(20)])
    user_names = sorted(set(users))
    index = np.asarray([user_names.index(u) for u in users], dtype=np.int64)
    smiling = np.tile(np.repeat([0, 1], 10), 12)
    shape = (len(users), 40, 30, 3)
    save_images(tmp_path / "fceleba.h5", ImageArrays(np.zeros(shape, np.uint8), smiling, np.zeros(shape, np.uint8),
                                                    smiling, ["not_smiling", "smiling"], "fake", user_names=user_names,
                                                    train_users=index, test_users=index))
    train_users, test_users = task_users(tmp_path / "fceleba.h5")
    celeba = sorted((t for t in resolved if t["dataset"] == "fceleba"), key=lambda t: t["user"]["index"])
    first_ten = sorted({f"u{u}" for u in range(12)})[:10]
    for t, uid in zip(celeba, first_ten):
        p = prepare_task(t, smiling, smiling, ["not_smiling", "smiling"], train_users=train_users,
                         test_users=test_users)
        assert set(users[p["train"]]) == set(users[p["val"]]) == set(users[p["test"]]) == {uid}
        assert (p["n_train"], p["n_val"], p["n_test"]) == (18, 2, 20)
    task = task_from_json({**p, "mean": [0] * 3, "std": [1] * 3})
    pixels, labels = read_task_pixels(tmp_path / "fceleba.h5", task, "train")
    assert pixels.shape == (18, 32, 32, 3) and sorted(set(labels.tolist())) == [0, 1]  # resized to 32×32


def test_transforms_rgb_resize_rainbow_and_per_task_normalisation(tmp_path):
    gray = np.zeros((2, 28, 28, 1), np.uint8)
    gray[:, 10:18, 10:18] = 255  # a white stroke on black
    out = apply_transforms(gray, [{"rainbow": "blue"}], [32, 32])
    assert out.shape == (2, 32, 32, 3)
    assert tuple(out[0, 0, 0]) == (0, 0, 255)  # black background becomes the colour
    assert tuple(out[0, 16, 16]) == (255, 255, 255)  # white stays white
    mid = rainbow(np.full((1, 1, 1, 3), 128, np.uint8), "red")
    assert tuple(mid[0, 0, 0]) == (255, 128, 128)  # x + (1 − x)·colour
    images = np.zeros((4, 2, 2, 3), np.uint8)
    images[:2, ..., 0] = 255
    mean, std = channel_statistics(images)
    assert mean == (0.5, 0.0, 0.0) and std == (0.5, 1.0, 1.0)
    path = write_fake(tmp_path / "mnist.h5", "mnist")
    spec = {**resolve_tasks(load_spec("ctrl-s-in"), 0)[0], "sizes": {"train": 30, "val": 10, "test": 10}}
    prepared = prepare_task(spec, *fake_labels("mnist"))
    mean, std = task_normalisation(prepared, path)
    pixels, _ = read_task_pixels(path, task_from_json({**prepared, "mean": mean, "std": std}), "train")
    assert pixels.shape == (300, 32, 32, 3)
    assert np.allclose(mean, pixels.reshape(-1, 3).mean(0) / 255)
    # red background: the red channel is 255 everywhere (std 0 → 1); the others vary
    assert std[0] == 1.0 and np.allclose(std[1:], pixels.reshape(-1, 3)[:, 1:].std(0) / 255)


def test_user_stream_from_an_image_folder_tree(tmp_path):
    root = tmp_path / "shapes" / "all"
    rng = np.random.default_rng(0)
    for name in ("circle", "square", "star"):
        (root / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    register_image_folder("shapes", tmp_path / "shapes")
    arrays = decode(locate_source("shapes", tmp_path, probe_network=False), tmp_path / "scratch")
    assert arrays.class_names == ["circle", "square", "star"] and arrays.train_images.shape == (36, 20, 24, 3)
    assert len(arrays.test_labels) == 0
    spec = load_spec({"image_size": 16, "split": {"kind": "count"}, "tasks": [
        {"dataset": "shapes", "classes": ["circle", "star"], "sizes": {"train": 6, "val": 2, "test": 4}},
        {"dataset": "shapes", "classes": {"draw": 2}, "sizes": {"train": 6, "val": 2, "test": 4}}]}, "mine")
    tasks = resolve_tasks(spec, 0)
    save_images(tmp_path / "shapes.h5", arrays)
    p = prepare_task(tasks[0], arrays.train_labels, arrays.test_labels, arrays.class_names)
    assert p["classes"] == [0, 2] and (p["n_train"], p["n_val"], p["n_test"]) == (12, 4, 8)
    mean, std = task_normalisation(p, tmp_path / "shapes.h5")
    pixels, labels = read_task_pixels(tmp_path / "shapes.h5", task_from_json({**p, "mean": mean, "std": std}), "test")
    assert pixels.shape == (8, 16, 16, 3) and sorted(labels.tolist()) == [0] * 4 + [1] * 4
    # appending a task leaves the earlier tasks' resolved specs as they were
    longer = load_spec({**spec.raw, "tasks": [*spec.raw["tasks"], {"dataset": "shapes", "classes": {"draw": 3}}]}, "mine")
    assert resolve_tasks(longer, 0)[:2] == tasks


@pytest.mark.parametrize("change, needle", [
    ({"tasks": []}, "tasks: [] should be non-empty"),
    ({"tasks": [{"dataset": "cifar10", "sizes": {"train": 0}}]}, "tasks[0].sizes"),
    ({"tasks": [{"dataset": "cifar10", "transform": [{"rainbow": "pink"}]}]}, "tasks[0].transform[0]"),
    ({"tasks": [{"dataset": "cifar10", "clases": [1]}]}, "'clases' was unexpected"),
])
def test_bad_spec_names_the_stream_task_and_key(change, needle):
    with pytest.raises(StreamSpecError) as err:
        load_spec(change, "streams.mine")
    assert "streams.mine" in str(err.value) and needle in str(err.value)


def test_distance_matrix_equals_the_pairwise_estimates():
    rng = np.random.default_rng(1)
    features, labels, protos = [], [], []
    for _ in range(12):
        k = int(rng.integers(2, 11))
        lab = np.concatenate([np.arange(k), rng.integers(0, k, int(rng.integers(0, 60)))])
        f = rng.normal(size=(len(lab), 24)).astype(np.float32)
        features.append(f), labels.append(lab), protos.append(class_prototypes(f, lab, k))
    for options in ({}, {"clamp_per_class": False}):
        pairwise = np.array([[nearest_prototype_kl(features[i], labels[i], protos[i], protos[j], **options)
                              for j in range(12)] for i in range(12)])
        assert np.array_equal(distance_matrix(features, labels, protos, block_elements=700, **options), pairwise)
