"""Finding, decoding and caching datasets; clear errors when data is missing."""
import tarfile

import numpy as np
import pytest

from conftest import CIFAR10_CLASSES
from par.streams import datasets
from par.streams.datasets.catalog import DatasetUnavailable, decode, load_images, load_labels, locate_source, save_images


def test_image_folder_decodes_in_cifar_label_order(cifar10_arrays):
    a = cifar10_arrays
    assert a.class_names == CIFAR10_CLASSES
    assert a.train_images.shape == (400, 32, 32, 3) and a.train_images.dtype == np.uint8
    assert np.bincount(a.train_labels).tolist() == [40] * 10
    assert np.bincount(a.test_labels).tolist() == [20] * 10
    assert a.train_images.std() > 20   # real pictures, not blanks


def test_archive_decodes_to_the_same_arrays(cifar10_slice, cifar10_arrays, tmp_path):
    archive = tmp_path / "data" / "cifar10-jpg.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar10_slice / "cifar10-jpg", arcname="cifar10-jpg")
    source = locate_source("cifar10", archive.parent, probe_network=False)
    assert source.kind == "image_folder_archive"
    arrays = decode(source, tmp_path / "scratch")
    np.testing.assert_array_equal(arrays.train_images, cifar10_arrays.train_images)
    np.testing.assert_array_equal(arrays.test_labels, cifar10_arrays.test_labels)
    assert not any((tmp_path / "scratch").iterdir())   # extraction cleaned up


def test_source_lookup_order(tmp_path):
    (tmp_path / "cifar10-jpg" / "train").mkdir(parents=True)
    (tmp_path / "cifar10-jpg" / "test").mkdir()
    assert locate_source("cifar10", tmp_path, probe_network=False).kind == "image_folder"
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert locate_source("cifar10", tmp_path, probe_network=False).kind == "torchvision"


def test_offline_and_missing_says_what_to_place_where(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.registry, "url_reachable", lambda url, timeout_seconds=5.0: False)
    with pytest.raises(DatasetUnavailable) as err:
        locate_source("cifar10", tmp_path / "nowhere")
    message = str(err.value)
    for needle in ("cifar10", "nowhere", "cifar-10-python.tar.gz", "cifar10-jpg.tar.gz", "data_root", "offline"):
        assert needle in message
    monkeypatch.setattr(datasets.registry, "url_reachable", lambda url, timeout_seconds=5.0: True)
    assert locate_source("cifar10", tmp_path).kind == "download"


def test_corrupt_archive_is_a_clear_error(tmp_path):
    (tmp_path / "cifar10-jpg.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DatasetUnavailable, match="not a readable"):
        decode(locate_source("cifar10", tmp_path, probe_network=False), tmp_path)


def test_cache_roundtrip(cifar10_arrays, tmp_path):
    save_images(tmp_path / "images.h5", cifar10_arrays)
    back = load_images(tmp_path / "images.h5")
    np.testing.assert_array_equal(back.train_images, cifar10_arrays.train_images)
    assert back.class_names == cifar10_arrays.class_names
    train, test, names = load_labels(tmp_path / "images.h5")
    np.testing.assert_array_equal(test, cifar10_arrays.test_labels)
