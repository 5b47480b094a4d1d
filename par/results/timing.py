"""Per-stage wall times of a finished run, from Snakemake's ``benchmark:`` files.

    python -m par.results.timing results/demo

prints, per rule, the number of jobs, their summed and longest wall time.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def stage_times(results_dir: str | Path) -> pd.DataFrame:
    """One row per rule: jobs, total_seconds, max_seconds (from ``benchmarks/<rule>/**.tsv``)."""
    rows = []
    for tsv in sorted(Path(results_dir, "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(Path(results_dir, "benchmarks")).parts[0]
        rows.append({"rule": rule, "seconds": float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])})
    if not rows:
        raise FileNotFoundError(f"no benchmark files under {results_dir}/benchmarks")
    frame = pd.DataFrame(rows)
    return (frame.groupby("rule").seconds.agg(jobs="count", total_seconds="sum", max_seconds="max")
            .reset_index().sort_values("total_seconds", ascending=False))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    times = stage_times(argv[0])
    print(times.to_markdown(index=False, floatfmt=".1f"))
    print(f"\nsum over compute jobs: {times.total_seconds.sum():.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
