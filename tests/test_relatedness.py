"""Nearest-Prototype KL (Eq. 2-4) against values computed by hand."""
import math

import numpy as np
import pytest

from par.relatedness import (class_prototypes, distance_matrix, load_prototypes, nearest_prototype_kl,
                             per_class_log_ratios, save_prototypes)

# New task i: class 0 at (0,0), (2,0) -> prototype (1,0); class 1 at (0,4), (0,6) -> prototype (0,5).
FEATURES = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
LABELS = np.array([0, 0, 1, 1])


def test_class_prototypes_are_class_means():
    protos = class_prototypes(FEATURES, LABELS, 2)
    np.testing.assert_allclose(protos, [[1.0, 0.0], [0.0, 5.0]])


def test_class_without_sample_is_an_error():
    with pytest.raises(ValueError, match="no sample"):
        class_prototypes(FEATURES, LABELS, 3)


def test_kl_matches_hand_computation():
    own = class_prototypes(FEATURES, LABELS, 2)
    other = np.array([[1.0, 1.0], [0.0, 9.0]])
    # rho = 1 for every sample.  nu: (0,0)->sqrt2, (2,0)->sqrt2, (0,4)->sqrt10, (0,6)->3.
    k0 = math.log(math.sqrt(2))
    k1 = (math.log(math.sqrt(10)) + math.log(3)) / 2
    np.testing.assert_allclose(per_class_log_ratios(FEATURES, LABELS, own, other), [k0, k1], rtol=1e-7)
    assert nearest_prototype_kl(FEATURES, LABELS, own, other) == pytest.approx(k0 + k1, rel=1e-7)
    assert k0 + k1 == pytest.approx(1.4715260, abs=1e-6)


def test_negative_class_terms_are_clamped_and_guarded():
    own = class_prototypes(FEATURES, LABELS, 2)
    other = np.array([[0.0, 0.0], [2.0, 0.0]])  # lies exactly on both class-0 samples: nu = 0
    k1 = (math.log(4) + math.log(6)) / 2
    clamped = nearest_prototype_kl(FEATURES, LABELS, own, other, clamp_per_class=True)
    raw = nearest_prototype_kl(FEATURES, LABELS, own, other, clamp_per_class=False)
    assert clamped == pytest.approx(k1, rel=1e-6)
    assert math.isfinite(raw) and raw == pytest.approx(k1 + math.log(1e-8 / (1 + 1e-8)), rel=1e-6)


def test_sample_on_its_own_prototype_gives_finite_value():
    features = np.array([[0.0, 0.0], [3.0, 4.0]])  # one sample per class: rho = 0
    labels = np.array([0, 1])
    own = class_prototypes(features, labels, 2)
    other = np.array([[0.0, 1.0]])
    kl = nearest_prototype_kl(features, labels, own, other)
    assert math.isfinite(kl)
    assert kl == pytest.approx(math.log((1 + 1e-8) / 1e-8) + math.log((math.sqrt(18) + 1e-8) / 1e-8), rel=1e-6)


def test_task_against_itself_is_zero():
    # (the authors' 0 -> 1 quirk is applied by the plan: tests/test_planning.py)
    own = class_prototypes(FEATURES, LABELS, 2)
    assert nearest_prototype_kl(FEATURES, LABELS, own, own) == 0.0


def test_distance_matrix_both_directions_and_asymmetric():
    rng = np.random.default_rng(0)
    feats = [rng.normal(loc=m, size=(30, 4)) for m in (0.0, 0.5, 4.0)]
    labels = [np.repeat([0, 1], 15) for _ in feats]
    for f, lab in zip(feats, labels):
        f[lab == 1] += 2.0
    protos = [class_prototypes(f, lab, 2) for f, lab in zip(feats, labels)]
    d = distance_matrix(feats, labels, protos)
    assert d.shape == (3, 3)
    np.testing.assert_allclose(np.diag(d), 0.0)
    assert d[0, 2] > d[0, 1]  # the shifted task is farther
    assert d[2, 0] == pytest.approx(nearest_prototype_kl(feats[2], labels[2], protos[2], protos[0]))
    assert not np.allclose(d, d.T)


def test_prototypes_roundtrip(tmp_path):
    protos = {1: ([3, 7], np.eye(2)), 2: ([1, 2], np.ones((2, 2)))}
    save_prototypes(tmp_path / "p.h5", protos, "weights-x")
    loaded = load_prototypes(tmp_path / "p.h5")
    np.testing.assert_array_equal(loaded[1], np.eye(2))
    np.testing.assert_array_equal(loaded[2], np.ones((2, 2)))
