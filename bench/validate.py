"""``python -m validator`` against the whole-frame way of profiling the same data, on the table of
``bench.preprocess`` (40 numeric and 10 categorical columns plus a binary target; 1M rows by
default).

Both run as fresh child processes (``python -m bench.validate --child ...``), so each one's peak
memory is its own (``VmHWM``) and the wall time is what a pod would spend, interpreter start and
imports included; ``work`` is the same run without them. The children are:

- ``validator``: ``python -m validator --source DATA --target target --output OUT`` (defaults:
  a schema inferred from the data, 60 plots), which streams the input batch by batch, and
  ``validator-no-plots``, the same with ``--max-plots 0`` (drawing costs the same at any size);
- ``whole-frame``: ``pd.read_parquet`` of the whole file, then per column what a profile needs
  from all rows at once: sorted finite values with their quantiles, mean and std (numeric),
  value counts (categorical), as ``python -m validator`` did before it streamed. No checks,
  report or plots: a floor for that approach, not its full cost.

Goal: the validator's peak memory at most 3x the Arrow in-memory size of the input
(``pyarrow.Table.nbytes`` of the whole file). The data is generated once into a temporary folder
(``--data-dir`` keeps it between runs); ``--rows`` sets its size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.child import MIB, measure, print_runs, report_work
from bench.preprocess import CATEGORICAL, NUMERIC, TARGET, generate

MEMORY_GOAL = 3.0
KINDS = ("whole-frame", "validator", "validator-no-plots")


def run_validator(data: Path, out: Path, plots: bool) -> None:
    from validator.cli import main

    argv = ["--source", str(data), "--target", TARGET, "--output", str(out)]
    if main(argv + ([] if plots else ["--max-plots", "0"])) != 0:
        raise SystemExit("python -m validator failed")


def run_whole_frame(data: Path) -> None:
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(data)
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            numbers = column.to_numpy("float64", na_value=np.nan)
            finite = np.sort(numbers[np.isfinite(numbers)])
            np.quantile(finite, [0.01, 0.25, 0.5, 0.75, 0.99])
            finite.mean(), finite.std()
        else:
            column.dropna().astype("string").value_counts()


def child(kind: str, data: Path, out: Path) -> None:
    """One measured run (see ``bench.child``)."""
    os.environ.setdefault("XCOM_RETURN_PATH", str(out.parent / f"{kind}-return.json"))
    if kind == "whole-frame":
        report_work(lambda: run_whole_frame(data))
    else:
        report_work(lambda: run_validator(data, out, plots=kind == "validator"))


def report(rows: int, arrow_bytes: int, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    for run in runs.values():
        run["peak_over_arrow"] = run["peak_rss_bytes"] / arrow_bytes
    ours = runs["validator"]["peak_over_arrow"]
    return {
        "rows": rows,
        "columns": {"numeric": NUMERIC, "categorical": CATEGORICAL},
        "arrow_bytes": arrow_bytes,
        "runs": runs,
        "goal": {"peak_over_arrow": MEMORY_GOAL, "value": ours, "met": ours <= MEMORY_GOAL},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{result['rows']:,} rows, Arrow size {result['arrow_bytes'] / MIB:,.0f} MiB")
    print_runs(result["runs"], ["wall_s", "work_s", "peak_rss_bytes", "peak_over_arrow"])
    goal = result["goal"]
    print(
        f"goal: validator peak {goal['value']:.2f}x Arrow (<= {MEMORY_GOAL:g}x): "
        + ("met" if goal["met"] else "NOT met")
    )


def benchmark(rows: int, data_dir: Path, as_json: bool) -> dict[str, Any]:
    data = data_dir / f"bench-{rows}.parquet"
    if not data.exists():
        print(f"generating {rows:,} rows into {data}", file=sys.stderr)
        generate(rows, data)
    arrow_bytes = pq.read_table(data).nbytes
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as work:
        runs = {kind: measure("bench.validate", kind, data, Path(work)) for kind in KINDS}
    result = report(rows, arrow_bytes, runs)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.validate", description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated table")
    p.add_argument("--data-dir", type=Path, default=None, help="keep the generated data here")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument("--child", nargs=3, metavar=("KIND", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, data, out = args.child
        child(kind, Path(data), Path(out))
        return 0
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        benchmark(args.rows, args.data_dir, args.json)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-validate-data-") as folder:
        benchmark(args.rows, Path(folder), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
