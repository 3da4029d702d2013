"""``python -m scorer`` (batch scoring through its real code path) against ``pyfunc.predict`` on
the whole frame at once: the same registered model (verified the same way), the same rows.

A model is trained briefly (``python -m preprocess`` and ``python -m trainer`` on a small sample,
then registered as ``@champion`` in an embedded MLflow store under a temporary folder); the rows
to score are the sample dataset's generator at ``--rows``. Each contender runs once in a fresh
interpreter (``bench.child``), so its peak memory is its own:

- ``scorer``: ``scorer.cli.main`` (parquet in, parquet out with its manifest, ``--batch-rows``);
- ``whole-frame``: ``load_verified_model``, ``pd.read_parquet`` of the whole file, one
  ``predict`` call, the predictions written to parquet.

Rows/s is rows over the work time (model loading included, interpreter start excluded).

In the same run, the cost of the integrity check on loading: ``mlflow.pyfunc.load_model`` of the
champion's URI against ``tabular_model.integrity.load_verified_model`` of the same URI (which
also resolves the version, reads its record, downloads every file to a folder of its own and
hashes it), in one fresh interpreter: one untimed load of each first (the first load imports
torch and the model's code), then ``--load-repeats`` rounds of one load of each, the order
swapped every round so that drift in the machine's speed hits both alike; medians reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from bench.child import MIB, RESULT_MARKER, measure, peak_rss, print_runs, report_work

MODEL_NAME = "bench-scoring"
MODEL_URI = f"models:/{MODEL_NAME}@champion"
KINDS = ("whole-frame", "scorer")
LOADS = "loads"  # the child that times the two ways of loading the model
LOADERS = ("plain", "verified")
TRAIN_ROWS = 5000


def run_scorer(data: Path, out: Path, batch_rows: int) -> None:
    from scorer.cli import main

    argv = ["--model", MODEL_URI, "--input", str(data), "--output", f"{out}.parquet"]
    if main([*argv, "--batch-rows", str(batch_rows)]) != 0:
        raise SystemExit("python -m scorer failed")


def run_whole_frame(data: Path, out: Path) -> None:
    import pandas as pd

    from common.tracking import configure_mlflow
    from tabular_model.integrity import load_verified_model

    configure_mlflow()
    model = load_verified_model(MODEL_URI)
    frame = pd.read_parquet(data)
    columns = model.metadata.get_input_schema().input_names()
    pd.DataFrame(model.predict(frame[columns])).to_parquet(f"{out}.parquet", index=False)


def time_loads(repeats: int) -> dict[str, list[float]]:
    """Seconds of each load of the champion, ``repeats`` per loader (after one untimed load of
    each); the order of the two is swapped every round."""
    import mlflow

    from common.tracking import configure_mlflow
    from tabular_model.integrity import load_verified_model

    configure_mlflow()
    loaders = {"plain": mlflow.pyfunc.load_model, "verified": load_verified_model}
    for load in loaders.values():
        load(MODEL_URI)  # imports torch and the model's code once, for both
    seconds: dict[str, list[float]] = {name: [] for name in LOADERS}
    for round_ in range(repeats):
        for name in LOADERS if round_ % 2 == 0 else LOADERS[::-1]:
            start = time.perf_counter()
            loaders[name](MODEL_URI)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def model_bytes() -> int:
    """The size of every file of the champion (what the verified load hashes)."""
    from tabular_model.integrity import verified_local_copy

    with tempfile.TemporaryDirectory() as folder:
        local = verified_local_copy(MODEL_URI, Path(folder) / "model")
        return sum(path.stat().st_size for path in local.rglob("*") if path.is_file())


def report_loads(repeats: int) -> None:
    """``time_loads`` in this (child) process, printed as ``bench.child``'s result line with
    the model's size."""
    start = time.perf_counter()
    seconds = time_loads(repeats)
    work = {"work_s": time.perf_counter() - start, "peak_rss_bytes": peak_rss()}
    print(RESULT_MARKER + json.dumps({**work, "load_s": seconds, "bytes": model_bytes()}))


def child(kind: str, data: Path, out: Path) -> None:
    """One measured run (see ``bench.child``); the batch size and the number of load rounds
    come from the environment."""
    os.environ.setdefault("XCOM_RETURN_PATH", str(out.parent / f"{kind}-return.json"))
    if kind == LOADS:
        report_loads(int(os.environ["BENCH_LOAD_REPEATS"]))
    elif kind == "whole-frame":
        report_work(lambda: run_whole_frame(data, out))
    else:
        report_work(lambda: run_scorer(data, out, int(os.environ["BENCH_BATCH_ROWS"])))


def prepare(home: Path, rows: int) -> Path:
    """A champion trained on a small sample, and ``rows`` raw rows to score (parquet)."""
    from demo.sample_data import TARGET, generate
    from preprocess.cli import main as preprocess
    from trainer.cli import main as train

    os.environ.update(
        PIPELINE_HOME=str(home), XCOM_RETURN_PATH=str(home / "return.json"), LOG_LEVEL="WARNING"
    )
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    raw = home / "train.parquet"
    generate(TRAIN_ROWS, seed=1).to_parquet(raw, index=False)
    processed = home / "processed"
    argv = ["--input", str(raw), "--output", str(processed), "--target", TARGET]
    if preprocess(argv) != 0:
        raise SystemExit("python -m preprocess failed")
    flags = ["--data-path", str(processed), "--experiment-name", "bench", "--epochs", "1"]
    if train([*flags, "--device", "cpu"]) != 0:
        raise SystemExit("python -m trainer failed")
    register(json.loads((home / "return.json").read_text())["run_id"])
    data = home / "score.parquet"
    generate(rows, seed=2).drop(columns=[TARGET]).to_parquet(data, index=False)
    return data


def register(run_id: str, name: str = MODEL_NAME) -> int:
    """The run's model as a new version of ``name``, with its integrity tags, at @champion;
    returns the version (the scorer's tests register their champion the same way)."""
    from common.tracking import configure_mlflow, run_model_uri
    from tabular_model import integrity

    mlflow = configure_mlflow()
    model_uri = run_model_uri(run_id)
    model_id = model_uri.removeprefix("models:/")
    if not integrity.has_record(model_id, run_id):
        integrity.record_logged_model(model_id, run_id)
    tags = integrity.version_tags(model_id, run_id)
    version = mlflow.register_model(model_uri, name, tags=tags)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version.version)
    return int(version.version)


def load_report(seconds: dict[str, list[float]], size: int) -> dict[str, Any]:
    """Medians of each loader's times, their ratio and difference, every time measured, and
    the size of the model's files."""
    plain, verified = (statistics.median(seconds[name]) for name in LOADERS)
    return {
        "repeats": len(seconds["plain"]),
        "model_bytes": size,
        "median_s": {"plain": plain, "verified": verified},
        "verified_over_plain": verified / plain,
        "verified_extra_s": verified - plain,
        "all_s": seconds,
    }


def report(
    rows: int, batch_rows: int, runs: dict[str, dict[str, Any]], loads: dict[str, Any]
) -> dict[str, Any]:
    for run in runs.values():
        run["rows_per_s"] = rows / run["work_s"]
    return {
        "rows": rows,
        "batch_rows": batch_rows,
        "runs": runs,
        "scorer_over_whole_frame": {
            "rows_per_s": runs["scorer"]["rows_per_s"] / runs["whole-frame"]["rows_per_s"],
            "peak_rss": runs["scorer"]["peak_rss_bytes"] / runs["whole-frame"]["peak_rss_bytes"],
        },
        "load": load_report(loads["load_s"], loads["bytes"]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),  # other work on the machine while measured
        },
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{result['rows']:,} rows scored, scorer batches of {result['batch_rows']:,} rows")
    print_runs(result["runs"], ["wall_s", "work_s", "rows_per_s", "peak_rss_bytes"])
    ratio = result["scorer_over_whole_frame"]
    print(f"scorer / whole frame: {ratio['rows_per_s']:.2f}x rows/s, {ratio['peak_rss']:.2f}x peak")
    load = result["load"]
    print(
        f"model load ({load['model_bytes'] / MIB:.2f} MiB), median of {load['repeats']}: "
        f"load_model {load['median_s']['plain']:.3f} s, "
        f"load_verified_model {load['median_s']['verified']:.3f} s "
        f"({load['verified_over_plain']:.2f}x, +{load['verified_extra_s']:.3f} s)"
    )


def benchmark(rows: int, batch_rows: int, load_repeats: int, as_json: bool) -> dict[str, Any]:
    # The steps' environment (PIPELINE_HOME, ...) is set for this run and its children only.
    scratch = tempfile.TemporaryDirectory(prefix="bench-scoring-")
    with scratch as folder, mock.patch.dict(os.environ):
        home = Path(folder)
        print(f"training a model and generating {rows:,} rows in {home}", file=sys.stderr)
        data = prepare(home, rows)
        os.environ["BENCH_BATCH_ROWS"] = str(batch_rows)
        os.environ["BENCH_LOAD_REPEATS"] = str(load_repeats)
        runs = {kind: measure("bench.batch_scoring", kind, data, home) for kind in KINDS}
        loads = measure("bench.batch_scoring", LOADS, data, home)
    result = report(rows, batch_rows, runs, loads)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.batch_scoring", description=__doc__)
    p.add_argument("--rows", type=int, default=500_000, help="rows to score")
    p.add_argument("--batch-rows", type=int, default=65_536, help="the scorer's --batch-rows")
    p.add_argument(
        "--load-repeats", type=int, default=9, help="timed loads of the model per loader"
    )
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument("--child", nargs=3, metavar=("KIND", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, data, out = args.child
        child(kind, Path(data), Path(out))
        return 0
    if args.load_repeats < 1:
        p.error("--load-repeats: expected 1 or more")
    benchmark(args.rows, args.batch_rows, args.load_repeats, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
