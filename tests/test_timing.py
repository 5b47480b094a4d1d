"""Per-stage times from benchmark files."""
import pytest

from par.results.timing import main, stage_times

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_stage_times_sum_and_max(tmp_path, capsys):
    for rel, seconds in (("learn_task/b/seed0/par/task1.tsv", 10.0), ("learn_task/b/seed0/par/task2.tsv", 30.5),
                         ("search_cell/b/seed0/par/task1.tsv", 7.0)):
        path = tmp_path / "benchmarks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + f"{seconds}\t0:00:10\t1\t1\t1\t1\t0\t0\t1\t1\n")
    times = stage_times(tmp_path).set_index("rule")
    assert times.loc["learn_task"].tolist() == [2, 40.5, 30.5]
    assert times.loc["search_cell"].jobs == 1
    assert main([str(tmp_path)]) == 0
    assert "47.5" in capsys.readouterr().out


def test_no_benchmarks_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmark"):
        stage_times(tmp_path)
