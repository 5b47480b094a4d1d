"""The paper's streams built by the pipeline's own task preparation (par.streams.spec.build_stream):
class orders (par.streams.class_orders), splits, subsets, task data; CIFAR-100 in its real file format."""
import pickle

import numpy as np
import pytest
import torchvision.datasets.cifar

from par.streams.class_orders import CLASS_ORDERS, cifar100_class_order, cifar100_validation_split
from par.streams.datasets.catalog import DataSource, ImageArrays, decode
from par.streams.spec import build_stream
from par.streams.tasks import Stream, task_data


def labels(n_classes, per_class):
    return np.repeat(np.arange(n_classes), per_class)


def stream_of_labels(benchmark, train_labels, test_labels, class_names, seed, **caps):
    """``benchmark``'s stream over blank 1×1 images with these labels."""
    arrays = ImageArrays(np.zeros((len(train_labels), 1, 1, 3), np.uint8), train_labels,
                         np.zeros((len(test_labels), 1, 1, 3), np.uint8), test_labels, class_names, "labels only")
    return build_stream(benchmark, arrays, seed, caps=caps)


def test_cifar10_5_follows_the_authors_task_order():
    # sklearn.utils.shuffle(np.arange(5), random_state=0) == RandomState(0).permutation(5) == [2, 0, 1, 3, 4]
    stream = stream_of_labels("cifar10-5", labels(10, 50), labels(10, 10), [f"c{i}" for i in range(10)], 0)
    assert [t.classes for t in stream.tasks] == [[4, 5], [0, 1], [2, 3], [6, 7], [8, 9]]
    assert stream.tasks[0].class_names == ["c4", "c5"]
    seed1 = stream_of_labels("cifar10-5", labels(10, 50), labels(10, 10), [str(i) for i in range(10)], 1)
    assert [t.classes[0] // 2 for t in seed1.tasks] == [2, 1, 4, 0, 3]


def test_splits_are_per_class_disjoint_and_complete():
    train_labels, test_labels = labels(10, 50), labels(10, 10)
    stream = stream_of_labels("cifar10-5", train_labels, test_labels, [str(i) for i in range(10)], 3)
    seen = set()
    for task in stream.tasks:
        assert not set(task.train) & set(task.val)
        for c in task.classes:
            assert (train_labels[task.val] == c).sum() == 5      # 10 % of 50 per class
            assert (train_labels[task.train] == c).sum() == 45
            assert (test_labels[task.test] == c).sum() == 10
        seen |= set(task.train) | set(task.val)
    assert seen == set(range(500))


def test_cifar100_10_is_450_50_100_per_class_over_a_seeded_permutation():
    stream = stream_of_labels("cifar100-10", labels(100, 500), labels(100, 100), [str(i) for i in range(100)], 0)
    assert stream.n_tasks == 10
    classes = [c for t in stream.tasks for c in t.classes]
    assert sorted(classes) == list(range(100))
    assert classes[:10] == [97, 66, 33, 19, 34, 3, 12, 2, 13, 92]      # authors' loader, seed 0 (SPEC §8)
    assert all((len(t.train), len(t.val), len(t.test)) == (4500, 500, 1000) for t in stream.tasks)
    assert stream_of_labels("cifar100-20", labels(100, 20), labels(100, 2), [str(i) for i in range(100)], 0
                       ).task(1).classes == classes[:5]
    assert CLASS_ORDERS["cifar100-authors"](0) == classes


def test_cifar100_class_order_is_the_authors_draw():
    # np.random.seed(seed); permutation(50000) for the validation split; then shuffle(range(100)).
    assert cifar100_class_order(0)[:10] == [97, 66, 33, 19, 34, 3, 12, 2, 13, 92]
    assert sorted(cifar100_class_order(1)) == list(range(100))
    assert cifar100_class_order(1) != cifar100_class_order(0)


def test_cifar100_validation_split_is_the_authors_draw():
    # 12 images, labels 0 1 2 0 1 2 ...; RandomState(0).permutation(12) = 6 11 4 10 2 8 1 7 9 3 0 5,
    # so class 0 comes in the order 6 9 3 0, class 1 as 4 10 1 7, class 2 as 11 2 8 5;
    # with val_fraction 0.5 the first two of each are validation.
    split = cifar100_validation_split(np.tile(np.arange(3), 4), seed=0, val_fraction=0.5)
    assert {c: (v.tolist(), t.tolist()) for c, (v, t) in split.items()} == {
        0: ([6, 9], [3, 0]), 1: ([4, 10], [1, 7]), 2: ([11, 2], [8, 5])}
    capped = cifar100_validation_split(np.tile(np.arange(3), 4), seed=0, val_fraction=0.5, max_per_class=2)
    assert capped[0][0].tolist() == [6] and capped[0][1].tolist() == [9]


def test_cifar100_stream_uses_the_authors_validation_images():
    train_labels = labels(100, 500)
    stream = stream_of_labels("cifar100-10", train_labels, labels(100, 100), [str(i) for i in range(100)], 0)
    split = cifar100_validation_split(train_labels, 0)
    first = stream.tasks[0]
    assert first.classes[0] == 97
    assert sorted(first.val[train_labels[first.val] == 97]) == sorted(split[97][0].tolist())
    assert len(split[97][0]) == 50 and len(split[97][1]) == 450


def test_per_class_subsets():
    stream = stream_of_labels("cifar10-5", labels(10, 50), labels(10, 10), [str(i) for i in range(10)], 0,
                         max_train_per_class=20, max_test_per_class=4)
    assert all((len(t.train), len(t.val), len(t.test)) == (36, 4, 8) for t in stream.tasks)


def test_too_few_images_is_a_clear_error():
    with pytest.raises(ValueError, match="class 4 .* gets 3 train, 0 val"):
        stream_of_labels("cifar10-5", labels(10, 3), labels(10, 3), [str(i) for i in range(10)], 0)


def test_stream_of_prepared_tasks_and_task_data(cifar10_arrays):
    a = cifar10_arrays
    stream = build_stream("cifar10-5", a, 0)
    again = Stream.from_tasks("cifar10-5", 0, stream.tasks)
    assert [t.classes for t in again.tasks] == [t.classes for t in stream.tasks]
    np.testing.assert_array_equal(again.task(2).val, stream.task(2).val)
    assert stream.normalisation(stream.task(3)) == (stream.task(3).mean, stream.task(3).std)
    assert stream.task(3).mean == tuple(x / 255 for x in (125.3, 123.0, 113.9))   # the authors' CIFAR-10 mean
    images, local = task_data(a, again.task(1), "test")
    assert images.shape == (40, 32, 32, 3) and set(local.tolist()) == {0, 1}
    assert (a.test_labels[again.task(1).test] == np.array(again.task(1).classes)[local.numpy()]).all()
    with pytest.raises(IndexError):
        stream.task(6)


def write_cifar100_python(root, per_class_train, per_class_test):
    """Generated images in torchvision's real CIFAR-100 file format."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, per_class in (("train", per_class_train), ("test", per_class_test)):
        fine = np.repeat(np.arange(100), per_class)
        rng.shuffle(fine)
        data = rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist()}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class{i:02d}" for i in range(100)],
                     "coarse_label_names": [f"super{i:02d}" for i in range(20)]}, f)


def test_cifar100_10_from_the_real_file_format(tmp_path, monkeypatch):
    write_cifar100_python(tmp_path, 20, 4)
    # Generated files cannot match the real files' md5 sums.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    arrays = decode(DataSource("cifar100", "torchvision", str(tmp_path)), tmp_path)
    assert arrays.train_images.shape == (2000, 32, 32, 3) and arrays.class_names[7] == "class07"
    stream = build_stream("cifar100-10", arrays, 0)
    assert [len(t.classes) for t in stream.tasks] == [10] * 10
    assert all((len(t.train), len(t.val), len(t.test)) == (180, 20, 40) for t in stream.tasks)
    first = stream.task(1)
    assert set(arrays.train_labels[first.train]) == set(first.classes)
