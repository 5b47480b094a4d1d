"""Nearest-Prototype KL (Eq. 2-4) against values computed by hand."""
import math

import h5py
import numpy as np
import pytest

from par.infra.provenance import provenance_json, read_provenance
from par.relatedness.distances import (class_prototypes, distance_matrix, load_distances, load_prototypes,
                                       nearest_prototype_kl, per_class_log_ratios, prototype_weights, save_prototypes)

# New task i: class 0 at (0,0), (2,0) -> prototype (1,0); class 1 at (0,4), (0,6) -> prototype (0,5).
FEATURES = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
LABELS = np.array([0, 0, 1, 1])


def test_class_prototypes_are_class_means():
    protos = class_prototypes(FEATURES, LABELS, 2)
    np.testing.assert_allclose(protos, [[1.0, 0.0], [0.0, 5.0]])


def test_class_without_sample_is_an_error():
    with pytest.raises(ValueError, match=r"classes \[2\] have no sample"):
        class_prototypes(FEATURES, LABELS, 3)
    with pytest.raises(ValueError, match=r"classes \[1\] have no sample"):   # the message names the empty class
        class_prototypes(FEATURES, np.array([0, 0, 2, 2]), 3)


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
    assert nearest_prototype_kl(FEATURES, LABELS, own, other) == clamped   # clamping is the default (spec §2)
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


def test_epsilon_is_the_one_given():
    # As test_kl_matches_hand_computation with epsilon = 1: rho + 1 = 2; nu + 1 = sqrt2+1, sqrt2+1, sqrt10+1, 4.
    own = class_prototypes(FEATURES, LABELS, 2)
    other = np.array([[1.0, 1.0], [0.0, 9.0]])
    k0 = math.log((math.sqrt(2) + 1) / 2)
    k1 = (math.log((math.sqrt(10) + 1) / 2) + math.log(4 / 2)) / 2
    np.testing.assert_allclose(per_class_log_ratios(FEATURES, LABELS, own, other, epsilon=1.0), [k0, k1], rtol=1e-12)
    assert nearest_prototype_kl(FEATURES, LABELS, own, other, epsilon=1.0) == pytest.approx(k0 + k1, rel=1e-12)


def test_float32_inputs_are_computed_in_float64():
    # rho of class 0 is sqrt(2): rounded to float32 it would be off by 2e-8.
    features = np.array([[0, 0], [2, 2], [10, 0], [10, 2]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    own = np.array([[1, 1], [10, 1]], dtype=np.float32)
    other = np.array([[0, 3], [7, 1]], dtype=np.float32)
    k0 = (math.log(3 / math.sqrt(2)) + math.log(math.sqrt(5) / math.sqrt(2))) / 2
    k1 = (math.log(math.sqrt(10)) + math.log(math.sqrt(10))) / 2
    np.testing.assert_allclose(per_class_log_ratios(features, labels, own, other, epsilon=0.0), [k0, k1], rtol=1e-14)


def pairwise(features, labels, prototypes, **options):
    n = len(features)
    return np.array([[nearest_prototype_kl(features[i], labels[i], prototypes[i], prototypes[j], **options)
                      for j in range(n)] for i in range(n)])


@pytest.mark.parametrize("clamp", [True, False])
def test_distance_matrix_is_the_pairwise_estimate_with_every_option(clamp):
    # Three tasks of two features each (more tasks than feature dimensions), epsilon 0.5, small blocks.
    rng = np.random.default_rng(3)
    feats = [rng.normal(loc=m, size=(12, 2)) for m in (0.0, 1.0, 3.0)]
    labels = [np.repeat([0, 1, 2], 4) for _ in feats]
    protos = [class_prototypes(f, lab, 3) for f, lab in zip(feats, labels)]
    expected = pairwise(feats, labels, protos, clamp_per_class=clamp, epsilon=0.5)
    for block in (2 ** 24, 7):
        d = distance_matrix(feats, labels, protos, clamp_per_class=clamp, epsilon=0.5, block_elements=block)
        np.testing.assert_allclose(d, expected, rtol=1e-12, atol=1e-12)
    assert clamp or (expected < 0).any()   # the unclamped case has negative terms


def test_distance_matrix_far_from_the_origin_with_float32_prototypes():
    # Features around 1e6 and float32 prototypes: choosing the nearest prototype by squared
    # distances must still be as exact as float64 allows (gaps between prototypes are ~1).
    rng = np.random.default_rng(1)
    feats = [1e6 + rng.normal(size=(6, 3)) * s for s in (1.0, 1.0, 3.0)]
    labels = [np.array([0, 0, 1, 1, 2, 2])] * 3
    protos = [class_prototypes(f, lab, 3).astype(np.float32) for f, lab in zip(feats, labels)]
    expected = pairwise(feats, labels, protos)
    assert (expected[~np.eye(3, dtype=bool)] > 0.5).all()
    np.testing.assert_allclose(distance_matrix(feats, labels, protos), expected, rtol=1e-9)


def test_prototypes_file_records_classes_weights_and_provenance(tmp_path):
    record = {"rule": "prototypes", "b": [1, 2], "a": {"y": 1, "x": 2}}
    save_prototypes(tmp_path / "p.h5", {1: (np.array([3, 7], dtype=np.int32), np.eye(2))}, "weights-x",
                    provenance=record)
    assert prototype_weights(tmp_path / "p.h5") == "weights-x"
    assert read_provenance(tmp_path / "p.h5") == record
    with h5py.File(tmp_path / "p.h5", "r") as f:
        classes = f["task1"]["classes"][...]
        assert classes.dtype == np.int64 and classes.tolist() == [3, 7]
        assert f.attrs["provenance"] == provenance_json(record)   # keys sorted: byte-identical reruns
    save_prototypes(tmp_path / "q.h5", {1: ([3, 7], np.eye(2))}, "weights-x")
    with h5py.File(tmp_path / "q.h5", "r") as f:
        assert "provenance" not in f.attrs


def test_distance_matrix_diagonal_is_zero_for_tiny_nearly_coincident_prototypes():
    # Features of scale 1e-3, class prototypes 1e-10 apart: every sample lies on its own
    # prototype, so nu = rho = 0 and the task's distance to itself is exactly 0 (not log(1.01)).
    f = np.array([[1e-3, 1e-10], [1e-3, 1e-10], [1e-3, 0.0], [1e-3, 0.0]])
    lab = np.array([0, 0, 1, 1])
    protos = class_prototypes(f, lab, 2)
    assert nearest_prototype_kl(f, lab, protos, protos, clamp_per_class=False) == 0.0
    assert distance_matrix([f], [lab], [protos], clamp_per_class=False)[0, 0] == 0.0


def test_load_distances_rebuilds_the_matrix_the_distances_rule_writes(tmp_path):
    """The Parquet rows (i, j, kl) back to D[i − 1, j − 1]; unlisted pairs are 0; n from the
    file or given; a task number outside 1…n is an error naming the file."""
    import pandas as pd

    from par.infra import schemas
    from par.infra.io import write_parquet

    path = tmp_path / "distances.parquet"
    rows = [{"i": 1, "j": 2, "kl": 0.5}, {"i": 3, "j": 1, "kl": 2.25}, {"i": 2, "j": 3, "kl": -1.0}]
    write_parquet(path, pd.DataFrame(rows), schemas.DISTANCES)
    expected = np.array([[0.0, 0.5, 0.0], [0.0, 0.0, -1.0], [2.25, 0.0, 0.0]])
    matrix = load_distances(path)
    assert matrix.dtype == np.float64 and np.array_equal(matrix, expected)
    assert np.array_equal(load_distances(path, 4), np.pad(expected, ((0, 1), (0, 1))))
    with pytest.raises(ValueError, match=r"distances.parquet: task numbers 1…3 are not all within 1…2"):
        load_distances(path, 2)
