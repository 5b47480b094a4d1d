"""AP, AF, M and T on a known accuracy matrix (Eq. 11, SPEC §6)."""

import numpy as np
import pytest

from par.results.metrics import (accuracy_matrix, average_forgetting, average_performance, forgetting, run_frames,
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


def test_run_frames_every_value_by_hand():
    """Every column of the three tables of RECORDS (mutation testing found them unchecked)."""
    metrics, accuracy, tasks = run_frames({t: {**rec, "device": "cpu"} for t, rec in RECORDS.items()},
                                          benchmark="b", seed=3, run="r", method="m",
                                          search_seconds={1: 4.0, 3: 7.0}, extractor_weights="w")
    key = {"benchmark": "b", "seed": 3, "run": "r", "method": "m"}
    assert metrics.to_dict("records") == [pytest.approx({
        **key, "n_tasks": 3, "n_groups": 2, "AP": 0.7, "AF": -0.1 / 3, "diagonal_mean": (0.9 + 0.7 + 0.6) / 3,
        "n_params": 1510, "M_millions": 0.00151, "hours": 46 / 3600, "critical_path_hours": 34 / 3600,
        "extractor_weights": "w", "device": "cpu"})]
    r = {(1, 1): 0.9, (2, 1): 0.8, (2, 2): 0.7, (3, 1): 0.8, (3, 2): 0.7, (3, 3): 0.6}
    assert accuracy.to_dict("records") == [pytest.approx({**key, "after_task": t, "task": u, "accuracy": a,
                                                          "measured": (t, u) not in ((3, 1), (3, 2))})
                                           for (t, u), a in r.items()]
    rows = tasks.astype(object).where(tasks.notna(), None).to_dict("records")
    assert rows == [
        pytest.approx({**key, "task": 1, "group": 1, "strategy": "allocate-search", "predecessor": None,
                       "genotype_source": "1", "n_train": 90, "n_params": 1000, "accuracy_when_learned": 0.9,
                       "final_accuracy": 0.8, "forgetting": -0.1, "val_accuracy": 0.9, "epochs_run": 3,
                       "search_seconds": 4.0, "seconds": 10.0}),
        pytest.approx({**key, "task": 2, "group": 1, "strategy": "regularize", "predecessor": 1,
                       "genotype_source": None, "n_train": 90, "n_params": 1010, "accuracy_when_learned": 0.7,
                       "final_accuracy": 0.7, "forgetting": 0.0, "val_accuracy": 0.7, "epochs_run": 3,
                       "search_seconds": 0.0, "seconds": 20.0}),
        pytest.approx({**key, "task": 3, "group": 2, "strategy": "allocate-search", "predecessor": None,
                       "genotype_source": "3", "n_train": 90, "n_params": 500, "accuracy_when_learned": 0.6,
                       "final_accuracy": 0.6, "forgetting": 0.0, "val_accuracy": 0.6, "epochs_run": 3,
                       "search_seconds": 7.0, "seconds": 5.0}),
    ]
    assert str(tasks.predecessor.dtype) == "Int64"
    assert run_frames(RECORDS, benchmark="b", seed=3, run="r", method="m")[0].extractor_weights[0] == "unused"


def test_carried_rows_and_wall_time_edge_cases():
    # task 2 tests only itself: its row carries task 1's value
    records = {1: RECORDS[1], 2: {**RECORDS[2], "test_accuracy": {"2": 0.7}}}
    assert accuracy_matrix(records, 2)[1].tolist() == [0.9, 0.7]
    # a root without a search starts at 0; a reused cell (int) without a search of its own waits for nothing
    roots = {1: {**RECORDS[1], "genotype_source": None}, 2: {**RECORDS[3], "task": 2, "genotype_source": 5}}
    assert wall_time(roots, {}) == (15.0, 10.0)
    assert wall_time({}) == (0.0, 0.0)
    with pytest.raises(ValueError, match="tested on a later task 2"):
        accuracy_matrix({1: {**RECORDS[1], "test_accuracy": {"1": 0.9, "2": 0.5}}}, 2)


def test_run_frames_devices_and_millions():
    """The device column lists the distinct devices, sorted, or "unknown" for records
    without one (older runs); M_millions is n_params / 10^6 exactly."""
    devices = {1: "cuda:0 H100", 2: "cpu (2 threads)", 3: "cuda:0 H100"}
    metrics = run_frames({t: {**rec, "device": devices[t]} for t, rec in RECORDS.items()},
                         benchmark="b", seed=0, run="r", method="m")[0]
    assert metrics.device[0] == "cpu (2 threads), cuda:0 H100"
    metrics = run_frames({1: RECORDS[1], 2: {**RECORDS[2], "n_params": 2_500_000}},
                         benchmark="b", seed=0, run="r", method="m")[0]
    assert metrics.device[0] == "unknown"
    assert metrics.n_params[0] == 2_500_000 and metrics.M_millions[0] == 2.5
