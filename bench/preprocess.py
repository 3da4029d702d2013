"""``python -m preprocess`` against a scikit-learn pipeline doing the same work, on one synthetic
table of 40 numeric and 10 categorical columns plus a binary target (1M rows by default).

Both run as fresh child processes (``python -m bench.preprocess --child ...``), so each one's
peak memory is its own (``VmHWM``) and the wall time is what a pod would spend, interpreter
start and imports included; ``work`` is the same run without them. The children are:

- ``preprocess``: ``python -m preprocess`` with ``--numeric-scaling standard --min-frequency 1``
  (the work the baseline does) and, as ``preprocess-robust``, with its defaults (robust scaling,
  min-frequency 5);
- ``sklearn``: ``pd.read_parquet``; ``train_test_split`` twice (70/15/15, seeded); a
  ``ColumnTransformer`` of ``StandardScaler`` (numeric) and ``OrdinalEncoder`` (categorical)
  fitted on train; ``transform`` of each split; ``DataFrame.to_parquet`` of each split.

Goals (issue 5): preprocess at least 5x faster than the baseline (wall time), and its peak memory
at most 3x the Arrow in-memory size of the input (``pyarrow.Table.nbytes`` of the whole file).

The data is generated once into a temporary folder (``--data-dir`` keeps it between runs).
``--quick`` runs 50 000 rows as a check that everything works; its numbers mean little.
``--repeat N`` runs every kind N times, interleaved, and reports medians (and the largest peak).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.child import MIB, measure, print_runs, report_work

NUMERIC, CATEGORICAL = 40, 10
TARGET = "target"
SPEEDUP_GOAL, MEMORY_GOAL = 5.0, 3.0
CARDINALITIES = (3, 5, 8, 12, 20, 50, 100, 300, 1000, 5000)
KINDS = ("sklearn", "preprocess", "preprocess-robust")


def generate(rows: int, path: Path, seed: int = 0) -> None:
    """40 float columns (5 % missing in every fourth), 10 text columns of growing cardinality,
    a binary text target that depends on some of them; written in 100 000-row row groups."""
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    logit = np.zeros(rows)
    for i in range(NUMERIC):
        values = rng.normal(i, 1 + i % 7, rows)
        logit += values * (0.05 if i % 3 == 0 else 0.0)
        mask = rng.random(rows) < 0.05 if i % 4 == 0 else None
        columns[f"num_{i:02d}"] = pa.array(values, mask=mask)
    for i, cardinality in enumerate(CARDINALITIES):
        vocabulary = pa.array([f"c{i}_{v}" for v in range(cardinality)])
        codes = np.minimum(rng.zipf(1.5, rows) - 1, cardinality - 1)
        logit += np.where(codes % 2 == 0, 0.2, -0.2)
        columns[f"cat_{i}"] = vocabulary.take(pa.array(codes))
    label = rng.random(rows) < 1 / (1 + np.exp(-(logit - logit.mean()) / logit.std()))
    columns[TARGET] = pa.array(np.where(label, "yes", "no"))
    pq.write_table(pa.table(columns), path, row_group_size=100_000)


def run_preprocess(data: Path, out: Path, standard: bool) -> None:
    from preprocess.cli import main

    extra = ["--numeric-scaling", "standard", "--min-frequency", "1"] if standard else []
    argv = ["--input", str(data), "--output", str(out), "--target", TARGET, *extra]
    if main(argv) != 0:
        raise SystemExit("python -m preprocess failed")


def run_sklearn(data: Path, out: Path) -> None:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    frame = pd.read_parquet(data)
    numeric = [c for c in frame.columns if c.startswith("num_")]
    categorical = [c for c in frame.columns if c.startswith("cat_")]
    train, rest = train_test_split(frame, test_size=0.3, random_state=42)
    val, test = train_test_split(rest, test_size=0.5, random_state=42)
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    pipeline = ColumnTransformer(
        [("numeric", StandardScaler(), numeric), ("categorical", encoder, categorical)]
    )
    pipeline.fit(train)
    out.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("val", val), ("test", test)):
        encoded = pd.DataFrame(pipeline.transform(split), columns=numeric + categorical)
        encoded[TARGET] = split[TARGET].to_numpy()
        encoded.to_parquet(out / f"{name}.parquet", index=False)


def child(kind: str, data: Path, out: Path) -> None:
    """One measured run (see ``bench.child``)."""
    os.environ.setdefault("XCOM_RETURN_PATH", str(out.parent / f"{kind}-return.json"))
    if kind == "sklearn":
        report_work(lambda: run_sklearn(data, out))
    else:
        report_work(lambda: run_preprocess(data, out, standard=kind == "preprocess"))


def report(rows: int, arrow_bytes: int, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    baseline = runs["sklearn"]["wall_s"]
    for run in runs.values():
        run["speedup"] = baseline / run["wall_s"]
        run["peak_over_arrow"] = run["peak_rss_bytes"] / arrow_bytes
    ours = runs["preprocess"]
    return {
        "rows": rows,
        "columns": {"numeric": NUMERIC, "categorical": CATEGORICAL},
        "arrow_bytes": arrow_bytes,
        "runs": runs,
        "goals": {
            "speedup": {"goal": SPEEDUP_GOAL, "value": ours["speedup"]},
            "peak_over_arrow": {"goal": MEMORY_GOAL, "value": ours["peak_over_arrow"]},
            "met": ours["speedup"] >= SPEEDUP_GOAL and ours["peak_over_arrow"] <= MEMORY_GOAL,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{result['rows']:,} rows, Arrow size {result['arrow_bytes'] / MIB:,.0f} MiB")
    print_runs(result["runs"], ["wall_s", "work_s", "speedup", "peak_rss_bytes", "peak_over_arrow"])
    goals = result["goals"]
    print(
        f"goals: speedup {goals['speedup']['value']:.1f}x (>= {SPEEDUP_GOAL:g}x), peak "
        f"{goals['peak_over_arrow']['value']:.2f}x Arrow (<= {MEMORY_GOAL:g}x): "
        + ("met" if goals["met"] else "NOT met")
    )


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median wall and work time of the samples; the largest peak memory."""
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "work_s": statistics.median(r["work_s"] for r in runs),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
    }


def benchmark(rows: int, data_dir: Path, as_json: bool, repeat: int) -> dict[str, Any]:
    data = data_dir / f"bench-{rows}.parquet"
    if not data.exists():
        print(f"generating {rows:,} rows into {data}", file=sys.stderr)
        generate(rows, data)
    arrow_bytes = pq.read_table(data).nbytes
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as work:
        for _ in range(repeat):  # interleaved, so background load spreads over every kind
            for kind in KINDS:
                samples[kind].append(measure("bench.preprocess", kind, data, Path(work)))
    runs = {kind: median_run(runs) for kind, runs in samples.items()}
    result = report(rows, arrow_bytes, runs)
    result["repeat"] = repeat
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.preprocess", description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated table")
    p.add_argument("--quick", action="store_true", help="50 000 rows: checks that it runs")
    p.add_argument("--data-dir", type=Path, default=None, help="keep the generated data here")
    p.add_argument("--repeat", type=int, default=1, help="runs of each kind (medians reported)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument("--child", nargs=3, metavar=("KIND", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, data, out = args.child
        child(kind, Path(data), Path(out))
        return 0
    rows = 50_000 if args.quick else args.rows
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        benchmark(rows, args.data_dir, args.json, args.repeat)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-data-") as folder:
        benchmark(rows, Path(folder), args.json, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
