"""The frozen extractor: seeded random weights, a weights file, offline errors."""
import numpy as np
import pytest
import torch
import torchvision

from par.relatedness import extractor
from par.relatedness.extractor import (ExtractorWeightsUnavailable, TaskFeatures, build_extractor, check_weights,
                           extract_features, load_features, save_features, weights_provenance)

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


def test_random_weights_are_seeded_and_give_512_d_features(cifar10_arrays):
    images = cifar10_arrays.train_images[:12]
    a = extract_features(build_extractor("random", 0), images, MEAN, STD, batch_size=5)
    b = extract_features(build_extractor("random", 0), images, MEAN, STD, batch_size=12)
    c = extract_features(build_extractor("random", 1), images, MEAN, STD)
    assert a.shape == (12, 512) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(a, c)
    assert "random" in weights_provenance("random", 0) and "seed 0" in weights_provenance("random", 0)


def test_state_dict_file_reproduces_the_model(tmp_path, cifar10_arrays):
    torch.manual_seed(5)
    source = torchvision.models.resnet18()
    torch.save(source.state_dict(), tmp_path / "r18.pt")
    source.fc = torch.nn.Identity()
    source.eval()
    images = cifar10_arrays.train_images[:4]
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = source(x).numpy()
    got = extract_features(build_extractor(str(tmp_path / "r18.pt")), images, MEAN, STD)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert "sha256" in weights_provenance(str(tmp_path / "r18.pt"), 0)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ExtractorWeightsUnavailable):
        build_extractor(str(tmp_path / "bad.pt"))


def test_offline_imagenet_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(extractor, "url_reachable", lambda url, timeout_seconds=5.0: False)
    with pytest.raises(ExtractorWeightsUnavailable) as err:
        check_weights("IMAGENET1K_V1")
    assert str(tmp_path) in str(err.value) and "random" in str(err.value)
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    check_weights("IMAGENET1K_V1")   # a cached file is enough to proceed
    with pytest.raises(ExtractorWeightsUnavailable, match="neither"):
        check_weights("/no/such/file.pt")


def test_features_file_roundtrip(tmp_path):
    tf = TaskFeatures(3, np.ones((4, 512), np.float32), np.array([0, 1, 0, 1]), np.arange(4), [6, 7], "val", "w")
    save_features(tmp_path / "f.h5", tf)
    back = load_features(tmp_path / "f.h5")
    assert (back.task, back.classes, back.split, back.weights) == (3, [6, 7], "val", "w")
    np.testing.assert_array_equal(back.features, tf.features)
