"""AP, AF, M and T on a known accuracy matrix (Eq. 11, SPEC §6)."""

import numpy as np
import pytest

from par.metrics import (accuracy_matrix, average_forgetting, average_performance, forgetting, run_frames,
                         total_parameters, wall_time)

# PAR-like run: tasks 1, 2 in group 1 (2 continues 1); task 3 founds group 2 with its own searched cell.
RECORDS = {
    1: {"task": 1, "group": 1, "strategy": "allocate-search", "predecessor": None, "genotype_source": 1,
        "test_accuracy": {"1": 0.9}, "n_params": 1000, "seconds": 10.0, "n_train": 90, "val_accuracy": 0.9,
        "epochs_run": 3},
    2: {"task": 2, "group": 1, "strategy": "regularize", "predecessor": 1, "genotype_source": None,
        "test_accuracy": {"1": 0.8, "2": 0.7}, "n_params": 1010, "seconds": 20.0, "n_train": 90,
        "val_accuracy": 0.7, "epochs_run": 3},
    3: {"task": 3, "group": 2, "strategy": "allocate-search", "predecessor": None, "genotype_source": 3,
        "test_accuracy": {"3": 0.6}, "n_params": 500, "seconds": 5.0, "n_train": 90, "val_accuracy": 0.6,
        "epochs_run": 3},
}


def test_accuracy_matrix_carries_values_outside_the_group():
    r = accuracy_matrix(RECORDS, 3)
    expected = np.array([[0.9, np.nan, np.nan], [0.8, 0.7, np.nan], [0.8, 0.7, 0.6]])
    np.testing.assert_array_equal(np.isnan(r), np.isnan(expected))
    np.testing.assert_allclose(r[~np.isnan(r)], expected[~np.isnan(expected)])


def test_ap_af_by_hand():
    r = accuracy_matrix(RECORDS, 3)
    assert average_performance(r) == pytest.approx((0.8 + 0.7 + 0.6) / 3)
    assert forgetting(r).tolist() == pytest.approx([-0.1, 0.0, 0.0])
    assert average_forgetting(r) == pytest.approx(-0.1 / 3)


def test_parameters_count_final_states_only():
    assert total_parameters(RECORDS) == 1010 + 500


def test_wall_time_total_and_critical_path():
    total, critical = wall_time(RECORDS, {1: 4.0, 3: 7.0})
    assert total == pytest.approx(10 + 20 + 5 + 4 + 7)
    # task 1 waits for its search (4 s): finishes 14, task 2 at 34; task 3 at 7 + 5 = 12.
    assert critical == pytest.approx(34.0)


def test_missing_own_accuracy_is_an_error():
    broken = {1: {**RECORDS[1], "test_accuracy": {}}}
    with pytest.raises(ValueError, match="not tested on task 1"):
        accuracy_matrix(broken, 1)


def test_run_frames_columns_and_values():
    metrics, accuracy, tasks = run_frames(RECORDS, benchmark="b", seed=0, run="par", method="par",
                                          search_seconds={1: 4.0, 3: 7.0}, extractor_weights="w")
    row = metrics.iloc[0]
    assert row.AP == pytest.approx(0.7) and row.n_groups == 2 and row.n_params == 1510
    assert row.hours == pytest.approx(46 / 3600) and row.critical_path_hours == pytest.approx(34 / 3600)
    assert len(accuracy) == 6 and accuracy.measured.sum() == 4   # r[3][1], r[3][2] carried
    assert tasks.forgetting.tolist() == pytest.approx([-0.1, 0.0, 0.0])
    assert tasks.predecessor.isna().tolist() == [True, False, True]
