"""Model quality panel: the trainer with its default flags against gradient boosting with its
defaults, on the real datasets of ``bench.datasets`` (binary and multiclass, 1.8k to 255k rows,
numeric-heavy and categorical-heavy), several seeds each, in one run on the same cores.

Per dataset and seed: a seeded split (70/15/15, or the dataset's own test file and 15 % of the
rest as val; ``--max-train-rows`` caps the training rows), then the real pipeline as the DAG runs
it: ``python -m preprocess --split-column fold``, ``python -m trainer`` with no model or
optimisation flag (its defaults; ``--seed`` is the split's seed), and ``python -m evaluator``
scoring the served MLflow model on the raw test rows. In the same run, on the same encoded
training rows (categorical codes as native categories): sklearn's HistGradientBoosting, and
XGBoost, LightGBM and CatBoost where they are installed (``pip install -e .[bench]``), each with
its library defaults and ``random_state`` = seed; they do not see the val rows (the trainer uses
them for early stopping only).

Reported: test accuracy per dataset and model (mean ± std over seeds), mean accuracy, mean rank
(1 = best per dataset), and training wall seconds (the trainer's whole run, MLflow logging
included; the fit of the others).

``python -m bench.panel [--quick] [--seeds N] [--datasets a,b] [--json] [--markdown]``:
``--markdown`` prints the tables (the default when ``--json`` is not given), ``--json`` the whole
report; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd

from bench import datasets
from bench.adult import machine, run_step
from common import dataset as encoded

EXPERIMENT = MODEL_NAME = "panel-bench"
TRAINER = "trainer (defaults)"
GBDTS = ("hgb", "xgboost", "lightgbm", "catboost")
MODELS = (TRAINER, *GBDTS)
GBDT_MODULES = {
    "hgb": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
}
QUICK_DATASETS = ("digits", "segment")
QUICK_FLAGS = ("--epochs", "2")
QUICK_MAX_TRAIN_ROWS = 1000
# Training rows kept per seed (0: all): what fits the panel in about 40 minutes on 2 shared cores.
MAX_TRAIN_ROWS = {"adult": 15_000, "fertility": 15_000, "mpls_stops": 15_000, "nass_cds": 15_000}


@dataclass(frozen=True)
class Run:
    dataset: str
    model: str
    seed: int
    accuracy: float | None  # None: the model failed (the progress line says why)
    seconds: float  # training wall time


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str
    rows: dict[str, int]  # per fold of seed 0
    numeric: int
    categorical: int
    classes: int
    max_train_rows: int
    source: str


@dataclass
class Report:
    date: str
    machine: dict[str, Any]
    command: str
    seeds: int
    quick: bool
    models: list[str]
    skipped: dict[str, str]  # model → why it did not run
    datasets: list[DatasetInfo]
    runs: list[Run]
    summary: dict[str, Any] = field(default_factory=dict)


# --- the models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """The preprocess output's encoded splits as tables the GBDT libraries take."""

    train: pd.DataFrame
    test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    categorical: list[str]  # column names holding category codes
    cardinality: dict[str, int]


def encoded_splits(data: str) -> Encoded:
    """Train and test rows of a preprocess output: numeric features as float32, categorical
    codes as pandas categories (every library's native categorical input)."""
    transform = encoded.load_transform(data)
    names = [c.name for c in transform.categorical]
    cardinality = {c.name: c.cardinality for c in transform.categorical}

    def frame(split: encoded.EncodedSplit) -> pd.DataFrame:
        table = pd.DataFrame(split.numeric, columns=list(transform.numeric_feature_names))
        for i, name in enumerate(names):
            codes = split.categorical[:, i]
            table[name] = pd.Categorical(codes, categories=range(cardinality[name]))
        return table

    train, test = (encoded.load_split(data, transform, s) for s in ("train", "test"))
    return Encoded(frame(train), frame(test), train.target, test.target, names, cardinality)


def fit_hgb(data: Encoded, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Codes beyond HGB's 255 categories are left as ordered numbers.
    wide = [c for c in data.categorical if data.cardinality[c] > 255]
    train = data.train.astype(dict.fromkeys(wide, "int64"))
    return HistGradientBoostingClassifier(random_state=seed).fit(train, data.y_train), wide


def predict_hgb(model: Any, data: Encoded) -> np.ndarray:
    fitted, wide = model
    return np.asarray(fitted.predict(data.test.astype(dict.fromkeys(wide, "int64"))))


def fit_xgboost(data: Encoded, seed: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(enable_categorical=True, random_state=seed).fit(data.train, data.y_train)


def fit_lightgbm(data: Encoded, seed: int) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(random_state=seed, verbose=-1).fit(data.train, data.y_train)


def fit_catboost(data: Encoded, seed: int) -> Any:
    from catboost import CatBoostClassifier

    codes = data.train.astype(dict.fromkeys(data.categorical, "int64"))
    model = CatBoostClassifier(random_seed=seed, verbose=0, allow_writing_files=False)
    return model.fit(codes, data.y_train, cat_features=data.categorical)


def predict_plain(model: Any, data: Encoded) -> np.ndarray:
    test = data.test
    if type(model).__module__.startswith("catboost"):
        test = test.astype(dict.fromkeys(data.categorical, "int64"))
    return np.asarray(model.predict(test)).reshape(-1)


FITS: dict[str, tuple[Callable[[Encoded, int], Any], Callable[[Any, Encoded], np.ndarray]]] = {
    "hgb": (fit_hgb, predict_hgb),
    "xgboost": (fit_xgboost, predict_plain),
    "lightgbm": (fit_lightgbm, predict_plain),
    "catboost": (fit_catboost, predict_plain),
}


def gbdt_run(model: str, data: Encoded, name: str, seed: int) -> Run:
    fit, predict = FITS[model]
    started = time.perf_counter()
    fitted = fit(data, seed)
    seconds = time.perf_counter() - started
    accuracy = float((predict(fitted, data).astype("int64") == data.y_test).mean())
    return Run(name, model, seed, accuracy, seconds)


def trainer_run(data: str, name: str, seed: int, args: argparse.Namespace, work: Path) -> Run:
    """``python -m trainer`` with its defaults, then ``python -m evaluator`` on the served model
    with the raw test rows."""
    from evaluator.cli import main as evaluate
    from trainer.cli import main as train

    argv = ["--data-path", data, "--experiment-name", EXPERIMENT, "--seed", str(seed)]
    argv += ["--device", args.device, "--checkpoint-dir", str(work / "checkpoints")]
    argv += QUICK_FLAGS if args.quick else ()
    started = time.perf_counter()
    result = run_step("train", train, argv, work)
    seconds = time.perf_counter() - started
    if result is None:
        return Run(name, TRAINER, seed, None, seconds)
    argv = ["--run-id", result["run_id"], "--data-path", data, "--model-name", MODEL_NAME]
    scored = run_step("evaluate", evaluate, [*argv, "--no-plots"], work)
    accuracy = None if scored is None else float(scored["new_accuracy"])
    return Run(name, TRAINER, seed, accuracy, seconds)


# --- one dataset --------------------------------------------------------------------------------


def preprocessed(frame: pd.DataFrame, target: str, work: Path) -> str:
    """``python -m preprocess --split-column fold`` on ``frame``; returns its output folder."""
    from preprocess.cli import main

    source, output = work / "raw.parquet", work / "processed"
    frame.to_parquet(source, index=False)
    argv = ["--input", str(source), "--output", str(output), "--target", target]
    if run_step("preprocess", main, [*argv, "--split-column", datasets.FOLD], work) is None:
        raise SystemExit(f"preprocess failed on {source}")
    return str(output)


def describe(ds: datasets.Dataset, frame: pd.DataFrame, data: str, cap: int) -> DatasetInfo:
    transform = encoded.load_transform(data)
    rows = {k: int(v) for k, v in frame[datasets.FOLD].value_counts().sort_index().items()}
    return DatasetInfo(
        name=ds.name,
        task=ds.task,
        rows=rows,
        numeric=len(transform.numeric),
        categorical=len(transform.categorical),
        classes=len(transform.classes),
        max_train_rows=cap,
        source=datasets.source_label(ds),
    )


def score_dataset(
    ds: datasets.Dataset, args: argparse.Namespace, models: Sequence[str]
) -> tuple[DatasetInfo, list[Run]]:
    """Every model on every seed's split of one dataset."""
    table = datasets.load(ds, None if args.data_dir is None else args.data_dir / ds.name)
    cap = args.max_train_rows if args.max_train_rows is not None else MAX_TRAIN_ROWS.get(ds.name, 0)
    plan = datasets.SplitPlan(max_train_rows=cap)
    runs, info = [], None
    for seed in range(args.seeds):
        frame = datasets.with_folds(table, plan, seed)
        frame = frame[frame[datasets.FOLD] != "unused"].reset_index(drop=True)
        with tempfile.TemporaryDirectory(prefix="bench-panel-") as tmp:
            work = Path(tmp)
            data = preprocessed(frame, ds.target, work)
            info = info or describe(ds, frame, data, cap)
            splits = encoded_splits(data)
            for model in models:
                if model == TRAINER:
                    run = trainer_run(data, ds.name, seed, args, work)
                else:
                    run = gbdt_run(model, splits, ds.name, seed)
                runs.append(run)
                shown = "failed" if run.accuracy is None else f"{run.accuracy:.4f}"
                print(
                    f"  {ds.name} seed {seed} {model}: {shown} ({run.seconds:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    assert info is not None
    return info, runs


# --- the report ---------------------------------------------------------------------------------


def accuracies(runs: Sequence[Run], name: str, model: str) -> list[float]:
    return [
        r.accuracy
        for r in runs
        if r.dataset == name and r.model == model and r.accuracy is not None
    ]


def ranks(values: Sequence[float]) -> list[float]:
    """1 for the highest value; ties share the mean of their places."""
    from scipy.stats import rankdata

    return [float(r) for r in rankdata([-v for v in values], method="average")]


def summarise(report: Report) -> dict[str, Any]:
    """Per model: mean accuracy and mean rank over the datasets every model completed, total
    training seconds; per dataset: the trainer's gap to the best GBDT."""
    names = [d.name for d in report.datasets]
    means = {
        m: {n: statistics.mean(a) for n in names if (a := accuracies(report.runs, n, m))}
        for m in report.models
    }
    complete = [n for n in names if all(n in means[m] for m in report.models)]
    rank_lists: dict[str, list[float]] = {m: [] for m in report.models}
    for n in complete:
        for m, r in zip(report.models, ranks([means[m][n] for m in report.models]), strict=True):
            rank_lists[m].append(r)
    gaps = {}
    for n in names:
        best = max((means[m][n], m) for m in report.models if m != TRAINER and n in means[m])
        if n in means[TRAINER]:
            gaps[n] = {
                "trainer": means[TRAINER][n],
                "best": best[1],
                "gap": means[TRAINER][n] - best[0],
            }
    return {
        "datasets_complete": complete,
        "mean_accuracy": {m: statistics.mean(means[m][n] for n in complete) for m in report.models}
        if complete
        else {},
        "mean_rank": {m: statistics.mean(v) for m, v in rank_lists.items() if v},
        "train_seconds": {
            m: sum(r.seconds for r in report.runs if r.model == m) for m in report.models
        },
        "trainer_gap": gaps,
    }


def cell(values: Sequence[float]) -> str:
    if not values:
        return "failed"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def markdown(report: Report) -> str:
    """The accuracy table (a row per dataset, a column per model, then the summary rows) and the
    training-time table."""
    s = report.summary
    models = report.models
    head = (
        "| dataset | task | rows train / val / test | features num / cat | "
        + " | ".join(models)
        + " | trainer - best GBDT |"
    )
    lines = [head, "|---|---|---|---|" + "---:|" * (len(models) + 1)]
    for d in report.datasets:
        rows = " / ".join(f"{d.rows.get(f, 0):,}" for f in ("train", "val", "test"))
        if d.max_train_rows and d.rows.get("train", 0) >= d.max_train_rows:
            rows += f" (train capped at {d.max_train_rows:,})"
        task = d.task if d.task == "binary" else f"{d.classes} classes"
        cells = [cell(accuracies(report.runs, d.name, m)) for m in models]
        gap = s["trainer_gap"].get(d.name)
        cells.append("" if gap is None else f"{gap['gap']:+.4f} ({gap['best']})")
        lines.append(
            f"| {d.name} | {task} | {rows} | {d.numeric} / {d.categorical} | "
            + " | ".join(cells)
            + " |"
        )
    blank = "| | | |"
    lines.append(
        f"| **mean accuracy** {blank} "
        + " | ".join(f"{s['mean_accuracy'].get(m, float('nan')):.4f}" for m in models)
        + " | |"
    )
    lines.append(
        f"| **mean rank** {blank} "
        + " | ".join(f"{s['mean_rank'].get(m, float('nan')):.2f}" for m in models)
        + " | |"
    )
    lines += ["", "Training wall seconds, mean per seed:", ""]
    lines += ["| dataset | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for d in report.datasets:
        secs = [
            statistics.mean(
                [r.seconds for r in report.runs if r.dataset == d.name and r.model == m] or [0.0]
            )
            for m in models
        ]
        lines.append(f"| {d.name} | " + " | ".join(f"{v:.1f}" for v in secs) + " |")
    lines.append(
        "| **total, all seeds** | "
        + " | ".join(f"{s['train_seconds'][m]:.0f}" for m in models)
        + " |"
    )
    if report.skipped:
        lines += ["", "Not run: " + "; ".join(f"{m} ({why})" for m, why in report.skipped.items())]
    return "\n".join(lines)


# --- the command --------------------------------------------------------------------------------


def available_models() -> tuple[list[str], dict[str, str]]:
    """The models whose library imports; the others with the reason."""
    models, skipped = [TRAINER], {}
    for model in GBDTS:
        try:
            importlib.import_module(GBDT_MODULES[model])
        except ImportError as exc:
            skipped[model] = f"not installed ({exc}); pip install -e '.[bench]'"
        else:
            models.append(model)
    return models, skipped


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.panel", description=__doc__)
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{', '.join(QUICK_DATASETS)}, 1 seed, {QUICK_MAX_TRAIN_ROWS} training rows, "
        f"trainer {' '.join(QUICK_FLAGS)}: a smoke run",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (split and training)")
    p.add_argument(
        "--datasets",
        default=None,
        help=f"comma-separated, from {', '.join(datasets.DATASETS)} "
        f"(default: all; --quick: {','.join(QUICK_DATASETS)})",
    )
    p.add_argument(
        "--max-train-rows",
        type=int,
        default=None,
        help=f"cap on training rows per dataset, 0: none (default: {MAX_TRAIN_ROWS or 'none'})",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="cache root (default: $PIPELINE_HOME/datasets or ~/.cache/tabular-pipeline)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="trainer device")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument(
        "--markdown", action="store_true", help="print the tables (default without --json)"
    )
    args = p.parse_args(argv)
    default = QUICK_DATASETS if args.quick else tuple(datasets.DATASETS)
    args.datasets = [d for d in args.datasets.split(",") if d] if args.datasets else list(default)
    unknown = [d for d in args.datasets if d not in datasets.DATASETS]
    if unknown or not args.datasets:
        p.error(f"--datasets: unknown {unknown}; choose from {', '.join(datasets.DATASETS)}")
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    if args.max_train_rows is not None and args.max_train_rows < 0:
        p.error("--max-train-rows must be 0 (no cap) or more")
    if args.quick:
        args.seeds = 1
        args.max_train_rows = args.max_train_rows or QUICK_MAX_TRAIN_ROWS
    return args


def measure(args: argparse.Namespace, command: str) -> Report:
    models, skipped = available_models()
    infos, runs = [], []
    for name in args.datasets:
        print(f"{name}:", file=sys.stderr, flush=True)
        info, scored = score_dataset(datasets.DATASETS[name], args, models)
        infos.append(info)
        runs += scored
    report = Report(
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        machine=machine() | {k: _version(k) for k in GBDT_MODULES.values()},
        command=command,
        seeds=args.seeds,
        quick=args.quick,
        models=models,
        skipped=skipped,
        datasets=infos,
        runs=runs,
    )
    report.summary = summarise(report)
    return report


def _version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except ImportError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m bench.panel " + " ".join(sys.argv[1:] if argv is None else argv)
    quiet = {"LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}  # for this run only
    try:
        with mock.patch.dict(os.environ, quiet):
            report = measure(args, command.strip())
    except datasets.DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.markdown or not args.json:
        print(markdown(report))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
