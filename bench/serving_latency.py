"""Latency of the served model behind the real scoring server (``mlflow models serve
--env-manager local``, one worker), against an sklearn HistGradientBoosting pipeline served the
same way, on the same rows, in one run.

* **ours**: the model ``python -m trainer`` logs (the trainer's default network, trained one
  epoch: the weights do not change the cost), on the project's sample data after
  ``python -m preprocess``; its served model checks every value and encodes the raw rows itself;
* **hgb**: ``OrdinalEncoder`` on the categorical columns (missing and unseen values → missing)
  and ``HistGradientBoostingClassifier`` with those columns as native categories, fitted on the
  same raw sample rows (accuracy is not compared here, only the cost of answering), saved with
  ``mlflow.sklearn.save_model`` (the serialiser ``log_model`` uses; skops format, no pickle),
  ``predict_proba`` as its pyfunc, and a signature inferred from the raw rows.

Both are timed on the raw test rows of the preprocess output. Both servers run at once; the
requests alternate between them (one to each, in turn), so drift
in the machine's speed hits both alike. A request is one HTTP POST of ``dataframe_split`` JSON
over a kept-alive connection, timed from send to parsed answer; the bodies are built before the
clock starts. Reported: p50 and p99 in milliseconds for 1 row and for 1,000 rows per request.

``python -m bench.serving_latency [--quick] [--rows N] [--requests-1 N] [--requests-1000 N]
[--json]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd

from contract.xcom import read_result
from demo.sample_data import TARGET, generate

MODELS = ("ours", "hgb")
BATCHES = (1, 1000)
# What skops refuses to load unless named: the fitted trees and two helpers of the pipeline. The
# file is written and read back by this run only.
SKOPS_TRUSTED = (
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)
WARMUP = 5  # requests per model and batch size before the clock starts


def scratch_env(folder: Path) -> dict[str, str]:
    """The steps' environment inside the scratch folder: XCom result, embedded MLflow store."""
    return {
        "XCOM_RETURN_PATH": str(folder / "xcom" / "return.json"),
        "PIPELINE_HOME": str(folder / "home"),
        "LOG_LEVEL": "WARNING",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
    }


def our_model(frame: pd.DataFrame, folder: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """Preprocess ``frame`` and train the trainer's default network for ``--epochs``; returns
    the preprocess output and the downloaded model folder."""
    from common.tracking import configure_mlflow, run_model_uri
    from preprocess.cli import main as preprocess
    from trainer.cli import main as train

    source, data = folder / "raw.parquet", folder / "processed"
    frame.to_parquet(source, index=False)
    with mock.patch.dict(os.environ, scratch_env(folder)):
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        argv = ["--input", str(source), "--output", str(data), "--target", TARGET]
        if preprocess(argv) != 0:
            raise SystemExit(f"preprocess failed on {source}")
        flags = ["--data-path", str(data), "--experiment-name", "bench-serving"]
        if train([*flags, "--epochs", str(args.epochs), "--device", "cpu"]) != 0:
            raise SystemExit("training failed")
        run_id = read_result("train")["run_id"]
        uri = run_model_uri(run_id)
        local = configure_mlflow().artifacts.download_artifacts(uri, dst_path=str(folder / "ours"))
    return data, Path(local)


def hgb_model(train: pd.DataFrame, folder: Path) -> Path:
    """The HistGradientBoosting pipeline fitted on raw rows, saved as an MLflow
    sklearn model (skops) under ``folder / "hgb"``."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    features = train.drop(columns=[TARGET])
    categorical = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    numeric = [c for c in features.columns if c not in categorical]
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
    )
    columns = ColumnTransformer(
        [("categorical", encoder, categorical), ("numeric", "passthrough", numeric)],
        verbose_feature_names_out=False,
    )
    hgb = HistGradientBoostingClassifier(
        categorical_features=list(range(len(categorical))), random_state=0
    )
    pipeline = Pipeline([("columns", columns), ("hgb", hgb)]).fit(features, train[TARGET])
    signature = infer_signature(features, pipeline.predict(features))
    target = folder / "hgb"
    mlflow.sklearn.save_model(
        pipeline, str(target), signature=signature, serialization_format="skops",
        pyfunc_predict_fn="predict_proba", skops_trusted_types=list(SKOPS_TRUSTED),
    )  # fmt: skip
    return target


def body(rows: pd.DataFrame) -> bytes:
    split = json.loads(rows.to_json(orient="split", index=False))
    return json.dumps({"dataframe_split": split}).encode()


def timed_post(session: Any, url: str, payload: bytes, rows: int) -> float:
    """Seconds for one request (send to parsed answer); fails unless it predicts every row."""
    started = time.perf_counter()
    response = session.post(
        f"{url}/invocations", data=payload, headers={"Content-Type": "application/json"}
    )
    predictions = response.json().get("predictions")
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or len(predictions) != rows:
        raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:500]}")
    return elapsed


def latencies(urls: dict[str, str], rows: pd.DataFrame, args: argparse.Namespace) -> dict:
    """{model: {batch: {p50_ms, p99_ms, requests}}}, requests alternating between models."""
    import requests

    report: dict[str, dict[str, dict[str, float]]] = {m: {} for m in urls}
    with requests.Session() as session:
        for batch, count in zip(BATCHES, (args.requests_1, args.requests_1000), strict=True):
            bodies = [body(rows.sample(batch, random_state=i)) for i in range(8)]
            samples: dict[str, list[float]] = {m: [] for m in urls}
            for i in range(WARMUP + count):
                for model, url in urls.items():
                    seconds = timed_post(session, url, bodies[i % len(bodies)], batch)
                    if i >= WARMUP:
                        samples[model].append(seconds)
            for model, values in samples.items():
                ms = np.asarray(values) * 1000
                report[model][str(batch)] = {
                    "p50_ms": round(float(np.percentile(ms, 50)), 2),
                    "p99_ms": round(float(np.percentile(ms, 99)), 2),
                    "requests": len(values),
                }
    return report


@contextmanager
def servers(models: dict[str, Path], folder: Path) -> Iterator[dict[str, str]]:
    from tools.servers import scoring_server

    with ExitStack() as stack:
        yield {
            # The baseline's file was written by this run, so MLflow may deserialise it.
            name: stack.enter_context(
                scoring_server(path, folder / f"server-{name}", allow_pickle=name == "hgb")
            )
            for name, path in models.items()
        }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| rows per request | ours p50 | ours p99 | hgb p50 | hgb p99 | ours / hgb (p50) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for batch in map(str, BATCHES):
        ours, hgb = report["latency"]["ours"][batch], report["latency"]["hgb"][batch]
        ratio = ours["p50_ms"] / hgb["p50_ms"]
        lines.append(
            f"| {int(batch):,} | {ours['p50_ms']:.1f} ms | {ours['p99_ms']:.1f} ms | "
            f"{hgb['p50_ms']:.1f} ms | {hgb['p99_ms']:.1f} ms | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    frame = generate(args.rows, seed=7)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        folder = Path(tmp)
        data, ours = our_model(frame, folder, args)
        test = pd.read_parquet(data / "raw" / "test.parquet").drop(columns=[TARGET])
        if len(test) < max(BATCHES):
            test = pd.concat([test] * (max(BATCHES) // len(test) + 1), ignore_index=True)
        with servers({"ours": ours, "hgb": hgb_model(frame, folder)}, folder) as urls:
            latency = latencies(urls, test, args)
    return {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "rows": args.rows,
        "epochs": args.epochs,
        "latency": latency,
    }


FULL = {"rows": 20_000, "requests_1": 300, "requests_1000": 60}
QUICK = {"rows": 3000, "requests_1": 3, "requests_1000": 2}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.serving_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", type=int, help="rows of the sample data (default: 20000)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs of our model")
    p.add_argument("--requests-1", type=int, help="timed 1-row requests per model (default: 300)")
    p.add_argument(
        "--requests-1000", type=int, help="timed 1,000-row requests per model (default: 60)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small data, few requests (a smoke run): 3000 rows, 3 and 2 requests, unless given",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON too")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for flag, value in defaults.items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)
    for flag in ("rows", "epochs", "requests_1", "requests_1000"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(f"\nScoring-server latency ({report['machine']}, {report['date']})\n")
    print(markdown(report))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
