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

``--task regression``: the same protocol on the numeric targets of
``bench.datasets.REGRESSION_DATASETS`` (442 to 58,788 rows), with ``preprocess --task regression``
(its default target scaling) and the regressors of the same libraries, fitted on the training
rows' targets as published. The served model predicts the raw test rows itself (its
``prediction`` column, in the target's units) and every model is scored against the raw test
targets. Reported: test RMSE and R² per dataset and model (mean ± std over seeds), the mean of
each model's RMSE relative to HistGradientBoosting's (1.0 = as good; the trainer's goal is at
most 1.02), mean rank (1 = lowest RMSE) and training wall seconds.

``--sweep`` adds the DAG's default hyperparameter sweep as a model of its own, ``sweep``: after
the trainer's defaults, per dataset and seed, the trainer once per trial of the DAG's
``DEFAULT_SEARCH_SPACE`` (expanded by the DAG's own ``hyperparameter_set`` with the DAG's param
defaults, each trial with the DAG's ``trainer_arguments`` and ``--seed`` = the split's seed, as
the DAG's ``seed`` param seeds every trial), the winner picked on validation data by the DAG's
``select_best`` (highest validation accuracy, or lowest validation RMSE), and the winner's served
model scored on the raw test rows exactly as the defaults' is. Its training seconds are the sum
of its trials'. The goal it is measured against: at least the best GBDT default's mean accuracy
(regression: a mean RMSE relative to HistGradientBoosting's at most the best GBDT's, and at most
1.0). The trials and the winner of every dataset and seed are in the JSON report.

``python -m bench.panel [--task T] [--quick] [--sweep] [--seeds N] [--datasets a,b] [--json]
[--markdown]``: ``--markdown`` prints the tables (the default when ``--json`` is not given),
``--json`` the whole report; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar
from unittest import mock

import numpy as np
import pandas as pd

from bench import datasets
from bench.adult import MIN_SUCCESS_FRACTION, REPO, machine, run_step, step_environment
from common import dataset as encoded
from common import tables

EXPERIMENT = MODEL_NAME = "panel-bench"
TRAINER = "trainer (defaults)"
SWEEP = "sweep"  # the DAG's default sweep, its winner picked on validation data
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
TASKS = ("classification", "regression")
REGRESSION_QUICK_DATASETS = ("diabetes", "concrete")
REGRESSION_MAX_TRAIN_ROWS = {"hotel_rates": 15_000, "diamonds": 15_000, "movies": 15_000}
# The trainer's goal on regression: its RMSE at most 2 % above HistGradientBoosting's, on average.
RELATIVE_RMSE_GOAL = 1.02
# The sweep's goal on regression: an RMSE at most HistGradientBoosting's, on average (and at most
# the best GBDT's).
SWEEP_RELATIVE_RMSE_GOAL = 1.0
# The DAG's param defaults the sweep runs with (``search``, ``n_trials``, ``max_trials``; its
# ``min_success_fraction`` is bench.adult's); ``seed`` is the split's seed here.
DAG_SEARCH, DAG_N_TRIALS, DAG_MAX_TRIALS = "grid", 8, 32
# --quick --sweep: the sweep's first trials only, each with QUICK_FLAGS.
QUICK_SWEEP_TRIALS = 2
# Raw and encoded targets of the same rows agree to float32 precision (the encoded target is
# standardised in float32).
TARGET_RTOL = 1e-4


@dataclass(frozen=True)
class Run:
    dataset: str
    model: str
    seed: int
    accuracy: float | None  # None: the model failed (the progress line says why)
    seconds: float  # training wall time


@dataclass(frozen=True)
class RegressionRun:
    dataset: str
    model: str
    seed: int
    rmse: float | None  # in the target's units; None: the model failed (the progress line says why)
    r2: float | None
    seconds: float  # training wall time


R = TypeVar("R", Run, RegressionRun)


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


@dataclass(frozen=True)
class RegressionDatasetInfo(DatasetInfo):
    log_target: bool = False  # whether preprocess chose to learn log1p of the target


@dataclass(frozen=True)
class SweepTrial:
    """One trial of the sweep on one dataset and seed, as the selection saw it."""

    index: int
    config: dict[str, Any]  # trainer flag (underscores) → value
    seconds: float  # the trainer's wall time
    run_id: str | None  # None: the trial failed (no valid train result)
    validation: float | None  # validation accuracy, or RMSE for regression
    loss: float | None  # validation loss (select_best's first tie-break)


@dataclass(frozen=True)
class SweepRecord:
    dataset: str
    seed: int
    trials: list[SweepTrial]
    selected: int | None  # the winner's index; None: too few trials succeeded


@dataclass(frozen=True)
class SweepPlan:
    """What ``--sweep`` ran: the DAG's search, its space and the trials of every dataset and
    seed (under ``--quick`` its first trials only, with ``extra_flags``)."""

    search: str
    search_space: Any
    trials: list[dict[str, Any]]
    min_success_fraction: float
    extra_flags: list[str]


@dataclass
class Report(Generic[R]):
    date: str
    machine: dict[str, Any]
    command: str
    seeds: int
    quick: bool
    models: list[str]
    skipped: dict[str, str]  # model → why it did not run
    datasets: list[DatasetInfo]
    runs: list[R]
    summary: dict[str, Any] = field(default_factory=dict)
    sweep: SweepPlan | None = None  # with --sweep
    sweeps: list[SweepRecord] = field(default_factory=list)  # per dataset and seed


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


def estimator(module: str, name: str) -> Any:
    """A library's estimator class, imported when first fitted (the libraries are optional)."""
    return getattr(importlib.import_module(module), name)


def fit_hgb(data: Encoded, seed: int, kind: str = "Classifier") -> Any:
    """``kind``: Classifier or Regressor, as for each library below."""
    hgb = estimator("sklearn.ensemble", f"HistGradientBoosting{kind}")
    # Codes beyond HGB's 255 categories are left as ordered numbers.
    wide = [c for c in data.categorical if data.cardinality[c] > 255]
    train = data.train.astype(dict.fromkeys(wide, "int64"))
    return hgb(random_state=seed).fit(train, data.y_train), wide


def predict_hgb(model: Any, data: Encoded) -> np.ndarray:
    fitted, wide = model
    return np.asarray(fitted.predict(data.test.astype(dict.fromkeys(wide, "int64"))))


def fit_xgboost(data: Encoded, seed: int, kind: str = "Classifier") -> Any:
    xgb = estimator("xgboost", f"XGB{kind}")
    return xgb(enable_categorical=True, random_state=seed).fit(data.train, data.y_train)


def fit_lightgbm(data: Encoded, seed: int, kind: str = "Classifier") -> Any:
    lgbm = estimator("lightgbm", f"LGBM{kind}")
    return lgbm(random_state=seed, verbose=-1).fit(data.train, data.y_train)


def fit_catboost(data: Encoded, seed: int, kind: str = "Classifier") -> Any:
    catboost = estimator("catboost", f"CatBoost{kind}")
    codes = data.train.astype(dict.fromkeys(data.categorical, "int64"))
    model = catboost(random_seed=seed, verbose=0, allow_writing_files=False)
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


REGRESSION_FITS: dict[
    str, tuple[Callable[[Encoded, int], Any], Callable[[Any, Encoded], np.ndarray]]
] = {
    "hgb": (functools.partial(fit_hgb, kind="Regressor"), predict_hgb),
    "xgboost": (functools.partial(fit_xgboost, kind="Regressor"), predict_plain),
    "lightgbm": (functools.partial(fit_lightgbm, kind="Regressor"), predict_plain),
    "catboost": (functools.partial(fit_catboost, kind="Regressor"), predict_plain),
}


def gbdt_run(model: str, data: Encoded, name: str, seed: int) -> Run:
    fit, predict = FITS[model]
    started = time.perf_counter()
    fitted = fit(data, seed)
    seconds = time.perf_counter() - started
    accuracy = float((predict(fitted, data).astype("int64") == data.y_test).mean())
    return Run(name, model, seed, accuracy, seconds)


def regression_scores(predicted: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """RMSE and R² of ``predicted`` against ``actual``, both in the target's units."""
    from sklearn.metrics import r2_score, root_mean_squared_error

    predicted = np.asarray(predicted, dtype="float64")
    if not np.isfinite(predicted).all():
        raise ValueError(f"{int((~np.isfinite(predicted)).sum())} non-finite predictions")
    return float(root_mean_squared_error(actual, predicted)), float(r2_score(actual, predicted))


def gbdt_regression_run(model: str, data: Encoded, name: str, seed: int) -> RegressionRun:
    """A regressor fitted on the encoded training rows and their targets in the target's
    units; scored on the encoded test rows against the raw test targets."""
    fit, predict = REGRESSION_FITS[model]
    started = time.perf_counter()
    fitted = fit(data, seed)
    seconds = time.perf_counter() - started
    rmse, r2 = regression_scores(predict(fitted, data), data.y_test)
    return RegressionRun(name, model, seed, rmse, r2, seconds)


def evaluated_accuracy(run_id: str, data: str, work: Path) -> float | None:
    """``python -m evaluator`` on the run's served model with the raw test rows: its test
    accuracy, or None when it failed."""
    from evaluator.cli import main as evaluate

    argv = ["--run-id", run_id, "--data-path", data, "--model-name", MODEL_NAME, "--no-plots"]
    scored = run_step("evaluate", evaluate, argv, work)
    return None if scored is None else float(scored["new_accuracy"])


def trainer_run(data: str, name: str, seed: int, args: argparse.Namespace, work: Path) -> Run:
    """``python -m trainer`` with its defaults, then ``python -m evaluator`` on the served model
    with the raw test rows."""
    from trainer.cli import main as train

    started = time.perf_counter()
    result = run_step("train", train, trainer_arguments(data, seed, args, work), work)
    seconds = time.perf_counter() - started
    accuracy = None if result is None else evaluated_accuracy(result["run_id"], data, work)
    return Run(name, TRAINER, seed, accuracy, seconds)


def trainer_arguments(data: str, seed: int, args: argparse.Namespace, work: Path) -> list[str]:
    """The trainer's flags: data, experiment, seed, device and checkpoints only (its defaults),
    plus ``--quick``'s."""
    argv = ["--data-path", data, "--experiment-name", EXPERIMENT, "--seed", str(seed)]
    argv += ["--device", args.device, "--checkpoint-dir", str(work / "checkpoints")]
    return argv + list(QUICK_FLAGS if args.quick else ())


def served_predictions(run_id: str, features: pd.DataFrame, work: Path) -> np.ndarray:
    """The ``prediction`` column of the run's served model on raw rows, the model loaded as the
    evaluator loads it (every file checked against the sha256 its run recorded)."""
    from common.tracking import configure_mlflow, run_model_uri
    from tabular_model.integrity import load_verified_model

    with step_environment(work, work / "score-return.json"):
        configure_mlflow()
        model = load_verified_model(run_model_uri(run_id))
        predicted = pd.DataFrame(model.predict(features))
    return predicted["prediction"].to_numpy("float64")


def served_scores(run_id: str, test: RawTest, work: Path) -> tuple[float | None, float | None]:
    """RMSE and R² of the run's served model on the raw test rows; (None, None) when serving
    failed (one failed model must not end the panel: it is reported as failed)."""
    try:
        predicted = served_predictions(run_id, test.features, work)
        return regression_scores(predicted, test.target)
    except Exception as exc:
        print(f"  serving run {run_id} failed: {exc}", file=sys.stderr, flush=True)
        return None, None


def trainer_regression_run(
    data: str, name: str, seed: int, args: argparse.Namespace, work: Path, test: RawTest
) -> RegressionRun:
    """``python -m trainer`` with its defaults, then its served model on the raw test rows."""
    from trainer.cli import main as train

    started = time.perf_counter()
    result = run_step("train", train, trainer_arguments(data, seed, args, work), work)
    seconds = time.perf_counter() - started
    rmse, r2 = (None, None) if result is None else served_scores(result["run_id"], test, work)
    return RegressionRun(name, TRAINER, seed, rmse, r2, seconds)


# --- the DAG's sweep ----------------------------------------------------------------------------


def dags_on_path() -> None:
    """The DAG's package importable from its folder, as the DAG processor imports it."""
    if str(REPO / "dags") not in sys.path:
        sys.path.insert(0, str(REPO / "dags"))


def sweep_plan(quick: bool) -> SweepPlan:
    """The sweep ``--sweep`` runs: the DAG's default search space and params, under
    ``--quick`` its first QUICK_SWEEP_TRIALS trials with QUICK_FLAGS."""
    from tabular_pipeline.sweep import DEFAULT_SEARCH_SPACE

    return SweepPlan(
        search=DAG_SEARCH,
        search_space=DEFAULT_SEARCH_SPACE,
        trials=[config for config, _ in sweep_configs(0, quick)],
        min_success_fraction=MIN_SUCCESS_FRACTION,
        extra_flags=list(QUICK_FLAGS if quick else ()),
    )


def sweep_configs(seed: int, quick: bool) -> list[tuple[dict[str, Any], str]]:
    """Each trial's config and MLflow run name, as the DAG's ``hyperparameter_set`` task makes
    them from its param defaults and ``seed`` (``--quick``: the first QUICK_SWEEP_TRIALS)."""
    from tabular_pipeline.sweep import DEFAULT_SEARCH_SPACE, hyperparameter_set, run_names

    space = DEFAULT_SEARCH_SPACE
    trials = hyperparameter_set(DAG_SEARCH, space, DAG_N_TRIALS, seed, DAG_MAX_TRIALS)
    named = list(zip(trials, run_names(trials), strict=True))
    return named[:QUICK_SWEEP_TRIALS] if quick else named


def sweep_arguments(
    config: dict[str, Any], run_name: str, index: int, split: Seeded, args: argparse.Namespace
) -> list[str]:
    """A trial's trainer flags: the DAG's ``trainer_arguments`` (its ``seed`` param = the
    split's seed), the device and a checkpoint folder of the trial's own, as the DAG's pods get
    them, plus ``--quick``'s."""
    from tabular_pipeline.sweep import trainer_arguments as dag_arguments

    argv = dag_arguments(config, split.data, EXPERIMENT, split.seed, run_name)
    checkpoints = split.work / f"{SWEEP}-{index}" / "checkpoints"
    argv += ["--device", args.device, "--checkpoint-dir", str(checkpoints)]
    return argv + list(QUICK_FLAGS if args.quick else ())


def train_sweep(
    split: Seeded, name: str, args: argparse.Namespace
) -> tuple[list[SweepTrial], dict[str, Any] | None]:
    """The trainer once per trial; the DAG's ``checked_trials`` and ``select_best`` pick the
    winner on validation data. Returns the trials and the winner's train result (None when too
    few trials succeeded)."""
    from tabular_pipeline.selection import checked_trials, select_best

    from trainer.cli import main as train

    metric = "rmse" if args.task == "regression" else "accuracy"
    configs, seconds, results = [], [], []
    seed = split.seed
    for index, (config, run_name) in enumerate(sweep_configs(seed, args.quick)):
        started = time.perf_counter()
        argv = sweep_arguments(config, run_name, index, split, args)
        results.append(run_step("train", train, argv, split.work))
        configs.append(config)
        seconds.append(time.perf_counter() - started)
        shown = "failed" if results[-1] is None else f"val {metric} {results[-1][metric]:.5g}"
        print(
            f"  {name} seed {seed} {SWEEP} trial {index} {config}: {shown} ({seconds[-1]:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    checked = checked_trials(results, [f"{SWEEP} trial {i}" for i in range(len(results))])
    trials = [
        sweep_trial(i, config, took, result, metric)
        for i, (config, took, result) in enumerate(zip(configs, seconds, checked, strict=True))
    ]
    try:
        return trials, select_best(checked, MIN_SUCCESS_FRACTION)
    except ValueError as exc:  # the DAG's ResultError: too few trials succeeded
        print(f"  {name} seed {seed} select_best: {exc}", file=sys.stderr, flush=True)
        return trials, None


def sweep_trial(
    index: int, config: dict[str, Any], seconds: float, result: Any, metric: str
) -> SweepTrial:
    """A trial as the selection saw it: its checked train result (None: failed) reduced to the
    run id, the validation ``metric`` and loss that ``select_best`` ranks by."""
    if result is None:
        return SweepTrial(index, config, seconds, None, None, None)
    run_id, score, loss = str(result["run_id"]), float(result[metric]), float(result["loss"])
    return SweepTrial(index, config, seconds, run_id, score, loss)


def sweep_record(
    name: str, seed: int, trials: list[SweepTrial], best: dict[str, Any] | None
) -> SweepRecord:
    chosen = [t.index for t in trials if best is not None and t.run_id == best["run_id"]]
    return SweepRecord(name, seed, trials, chosen[0] if chosen else None)


def sweep_run(split: Seeded, name: str, args: argparse.Namespace) -> tuple[Run, SweepRecord]:
    """The sweep, then ``python -m evaluator`` on the winner's served model with the raw test
    rows, as the defaults' run is scored."""
    trials, best = train_sweep(split, name, args)
    accuracy = None if best is None else evaluated_accuracy(best["run_id"], split.data, split.work)
    run = Run(name, SWEEP, split.seed, accuracy, sum(t.seconds for t in trials))
    return run, sweep_record(name, split.seed, trials, best)


def sweep_regression_run(
    split: Seeded, name: str, args: argparse.Namespace, test: RawTest
) -> tuple[RegressionRun, SweepRecord]:
    """The sweep, then the winner's served model on the raw test rows, as the defaults'."""
    trials, best = train_sweep(split, name, args)
    rmse, r2 = (None, None) if best is None else served_scores(best["run_id"], test, split.work)
    run = RegressionRun(name, SWEEP, split.seed, rmse, r2, sum(t.seconds for t in trials))
    return run, sweep_record(name, split.seed, trials, best)


# --- one dataset --------------------------------------------------------------------------------


def preprocessed(frame: pd.DataFrame, target: str, work: Path, task: str) -> str:
    """``python -m preprocess --split-column fold`` on ``frame`` (``--task regression`` for a
    numeric target; a classification target is left to preprocess's default); returns its
    output folder."""
    from preprocess.cli import main

    source, output = work / "raw.parquet", work / "processed"
    frame.to_parquet(source, index=False)
    argv = ["--input", str(source), "--output", str(output), "--target", target]
    argv += ["--task", "regression"] if task == "regression" else []
    if run_step("preprocess", main, [*argv, "--split-column", datasets.FOLD], work) is None:
        raise SystemExit(f"preprocess failed on {source}")
    return str(output)


def describe(ds: datasets.Dataset, frame: pd.DataFrame, data: str, cap: int) -> DatasetInfo:
    transform = encoded.load_transform(data)
    rows = {k: int(v) for k, v in frame[datasets.FOLD].value_counts().sort_index().items()}
    scaling = transform.target_scaling
    info = RegressionDatasetInfo if ds.task == "regression" else DatasetInfo
    extra = {} if scaling is None else {"log_target": bool(scaling.log)}
    return info(
        name=ds.name,
        task=ds.task,
        rows=rows,
        numeric=len(transform.numeric),
        categorical=len(transform.categorical),
        classes=len(transform.classes),
        max_train_rows=cap,
        source=datasets.source_label(ds),
        **extra,
    )


@dataclass(frozen=True)
class Seeded:
    """One seed's split of a dataset, through preprocess, in a scratch folder of its own."""

    seed: int
    frame: pd.DataFrame  # the rows preprocess read, with their fold
    work: Path
    data: str  # the preprocess output
    cap: int  # the training-row cap it was drawn with (0: none)


def seeded_outputs(ds: datasets.Dataset, args: argparse.Namespace) -> Iterator[Seeded]:
    """Each seed's split of ``ds`` preprocessed, its scratch folder removed once the caller
    moves on to the next."""
    table = datasets.load(ds, None if args.data_dir is None else args.data_dir / ds.name)
    caps = REGRESSION_MAX_TRAIN_ROWS if args.task == "regression" else MAX_TRAIN_ROWS
    cap = args.max_train_rows if args.max_train_rows is not None else caps.get(ds.name, 0)
    plan = datasets.SplitPlan(max_train_rows=cap)
    for seed in range(args.seeds):
        frame = datasets.with_folds(table, plan, seed)
        frame = frame[frame[datasets.FOLD] != "unused"].reset_index(drop=True)
        with tempfile.TemporaryDirectory(prefix="bench-panel-") as tmp:
            work = Path(tmp)
            data = preprocessed(frame, ds.target, work, args.task)
            yield Seeded(seed, frame, work, data, cap)


def progress(run: Run | RegressionRun) -> None:
    if isinstance(run, Run):
        shown = "failed" if run.accuracy is None else f"{run.accuracy:.4f}"
    else:
        shown = "failed" if run.rmse is None else f"RMSE {run.rmse:.5g}, R² {run.r2:.4f}"
    print(
        f"  {run.dataset} seed {run.seed} {run.model}: {shown} ({run.seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


def score_dataset(
    ds: datasets.Dataset, args: argparse.Namespace, models: Sequence[str]
) -> tuple[DatasetInfo, list[Run], list[SweepRecord]]:
    """Every model on every seed's split of one dataset; the sweep's trials."""
    runs, records, info = [], [], None
    for split in seeded_outputs(ds, args):
        info = info or describe(ds, split.frame, split.data, split.cap)
        splits = encoded_splits(split.data)
        for model in models:
            if model == TRAINER:
                run = trainer_run(split.data, ds.name, split.seed, args, split.work)
            elif model == SWEEP:
                run, record = sweep_run(split, ds.name, args)
                records.append(record)
            else:
                run = gbdt_run(model, splits, ds.name, split.seed)
            runs.append(run)
            progress(run)
    assert info is not None
    return info, runs, records


@dataclass(frozen=True)
class RawTest:
    """The raw test rows of a preprocess output: the served model's input and the targets."""

    features: pd.DataFrame
    target: np.ndarray  # float64, in the target's units


def raw_targets(split: Seeded, target: str) -> tuple[np.ndarray, RawTest]:
    """The training rows' targets as published and the raw test rows, each checked against
    the encoded targets of the same rows (unscaled): every model learns from and is scored on
    the same values, whatever preprocess chose to train the network on."""
    transform = encoded.load_transform(split.data)
    scaling = transform.target_scaling
    if scaling is None:
        raise datasets.DataError(f"{split.data}: preprocess did not make a regression output")
    test = tables.read_table(encoded.raw_uri(split.data, "test"))
    train = split.frame.loc[split.frame[datasets.FOLD] == "train", target]
    values = {
        "train": train.to_numpy("float64"),
        "test": test[target].to_numpy("float64"),
    }
    for name, raw in values.items():
        unscaled = scaling.unscale(encoded.load_split(split.data, transform, name).target)
        close = np.allclose(raw, unscaled, rtol=TARGET_RTOL, atol=TARGET_RTOL * raw.std())
        if raw.shape != unscaled.shape or not close:
            raise datasets.DataError(
                f"{split.data}: the {name} rows' targets are not those of the rows given to "
                "preprocess, in their order"
            )
    return values["train"], RawTest(test.drop(columns=[target]), values["test"])


def score_regression_dataset(
    ds: datasets.Dataset, args: argparse.Namespace, models: Sequence[str]
) -> tuple[DatasetInfo, list[RegressionRun], list[SweepRecord]]:
    """Every model on every seed's split of one regression dataset; the sweep's trials."""
    runs, records, info = [], [], None
    for split in seeded_outputs(ds, args):
        info = info or describe(ds, split.frame, split.data, split.cap)
        y_train, test = raw_targets(split, ds.target)
        splits = replace(encoded_splits(split.data), y_train=y_train, y_test=test.target)
        for model in models:
            if model == TRAINER:
                run = trainer_regression_run(
                    split.data, ds.name, split.seed, args, split.work, test
                )
            elif model == SWEEP:
                run, record = sweep_regression_run(split, ds.name, args, test)
                records.append(record)
            else:
                run = gbdt_regression_run(model, splits, ds.name, split.seed)
            runs.append(run)
            progress(run)
    assert info is not None
    return info, runs, records


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


def summarise(report: Report[Run]) -> dict[str, Any]:
    """Per model: mean accuracy and mean rank over the datasets every model completed, total
    training seconds; per dataset: the trainer's gap to the best GBDT; with the sweep, whether
    its mean accuracy reaches the best GBDT's."""
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
        best = max((means[m][n], m) for m in report.models if m in GBDTS and n in means[m])
        if n in means[TRAINER]:
            gaps[n] = {
                "trainer": means[TRAINER][n],
                "best": best[1],
                "gap": means[TRAINER][n] - best[0],
            }
    mean_accuracy = (
        {m: statistics.mean(means[m][n] for n in complete) for m in report.models}
        if complete
        else {}
    )
    summary = {
        "datasets_complete": complete,
        "mean_accuracy": mean_accuracy,
        "mean_rank": {m: statistics.mean(v) for m, v in rank_lists.items() if v},
        "train_seconds": {
            m: sum(r.seconds for r in report.runs if r.model == m) for m in report.models
        },
        "trainer_gap": gaps,
    }
    if SWEEP in report.models:
        summary["sweep_goal"] = sweep_goal(mean_accuracy, higher_is_better=True)
    return summary


def sweep_goal(means: dict[str, float], higher_is_better: bool) -> dict[str, Any]:
    """Whether the sweep's mean (accuracy, or RMSE relative to HistGradientBoosting's) reaches
    the best GBDT default's over the same datasets; for the relative RMSE also at most
    SWEEP_RELATIVE_RMSE_GOAL. ``met`` is None when nothing was measured (no dataset that every
    model completed)."""
    gbdts = {m: v for m, v in means.items() if m in GBDTS}
    sweep = means.get(SWEEP)
    if sweep is None or not gbdts:
        return {"best_gbdt": None, "best_gbdt_mean": None, "sweep_mean": sweep, "met": None}
    best = (max if higher_is_better else min)(gbdts, key=gbdts.__getitem__)
    met = sweep >= gbdts[best] if higher_is_better else sweep <= gbdts[best]
    goal: dict[str, Any] = {"best_gbdt": best, "best_gbdt_mean": gbdts[best], "sweep_mean": sweep}
    if not higher_is_better:
        goal["mean_relative_rmse_at_most"] = SWEEP_RELATIVE_RMSE_GOAL
        met = met and sweep <= SWEEP_RELATIVE_RMSE_GOAL
    return goal | {"met": met}


def goal_lines(report: Report[Any]) -> list[str]:
    """The goals the tables measure, with ``--sweep``: the sweep against the best GBDT default
    (and, on regression, the trainer's defaults against RELATIVE_RMSE_GOAL)."""
    s = report.summary
    if "sweep_goal" not in s:
        return []
    goal, lines = s["sweep_goal"], [""]
    if "mean_relative_rmse" in s:  # regression
        trainer = s["mean_relative_rmse"].get(TRAINER)
        shown = None if trainer is None else f"{trainer:.3f}"
        lines.append(
            f"- Goal, the trainer's defaults: mean RMSE / hgb's at most {RELATIVE_RMSE_GOAL}: "
            f"{verdict(s['goal']['met'], shown)}."
        )
        what = f"mean RMSE / hgb's at most the best GBDT default's and {SWEEP_RELATIVE_RMSE_GOAL}"
        digits = 3
    else:
        what, digits = "mean accuracy at least the best GBDT default's", 4
    shown = None
    if goal["met"] is not None:
        shown = f"{SWEEP} {goal['sweep_mean']:.{digits}f}, best GBDT {goal['best_gbdt']} "
        shown += f"{goal['best_gbdt_mean']:.{digits}f}"
    lines.append(f"- Goal, the DAG's default sweep: {what}: {verdict(goal['met'], shown)}.")
    return lines


def verdict(met: bool | None, shown: str | None) -> str:
    """``met`` in bold with the numbers ``shown``; None: nothing measured."""
    if met is None or shown is None:
        return "not measured (no dataset that every model completed)"
    return f"{'**met**' if met else '**not met**'} ({shown})"


def cell(values: Sequence[float]) -> str:
    if not values:
        return "failed"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def rows_cell(d: DatasetInfo) -> str:
    rows = " / ".join(f"{d.rows.get(f, 0):,}" for f in ("train", "val", "test"))
    if d.max_train_rows and d.rows.get("train", 0) >= d.max_train_rows:
        rows += f" (train capped at {d.max_train_rows:,})"
    return rows


def markdown(report: Report[Run]) -> str:
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
        rows = rows_cell(d)
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
    return "\n".join(lines + goal_lines(report) + seconds_table(report))


def seconds_table(report: Report[Any]) -> list[str]:
    """The training-time table (mean per seed, total over seeds) and the models not run."""
    models = report.models
    lines = ["", "Training wall seconds, mean per seed:", ""]
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
        + " | ".join(f"{report.summary['train_seconds'][m]:.0f}" for m in models)
        + " |"
    )
    if report.skipped:
        lines += ["", "Not run: " + "; ".join(f"{m} ({why})" for m, why in report.skipped.items())]
    return lines


# --- the regression report ----------------------------------------------------------------------


def run_values(runs: Sequence[RegressionRun], name: str, model: str, key: str) -> list[float]:
    """``key`` (rmse or r2) of the model's completed runs on dataset ``name``."""
    return [
        float(getattr(r, key))
        for r in runs
        if r.dataset == name and r.model == model and r.rmse is not None
    ]


def summarise_regression(report: Report[RegressionRun]) -> dict[str, Any]:
    """Per model, over the datasets every model completed: the mean of its RMSE relative to
    HistGradientBoosting's (each dataset's RMSE averaged over seeds first), mean R², mean rank
    (1 = lowest RMSE), total training seconds; per dataset: the trainer's RMSE relative to
    HistGradientBoosting's and to the best GBDT's; whether the trainer meets the goal and, with
    the sweep, whether the sweep meets its own."""
    names = [d.name for d in report.datasets]
    rmse = {
        m: {n: statistics.mean(v) for n in names if (v := run_values(report.runs, n, m, "rmse"))}
        for m in report.models
    }
    r2 = {
        m: {n: statistics.mean(v) for n in names if (v := run_values(report.runs, n, m, "r2"))}
        for m in report.models
    }
    complete = [n for n in names if all(n in rmse[m] for m in report.models)]
    rank_lists: dict[str, list[float]] = {m: [] for m in report.models}
    for n in complete:
        placed = ranks([-rmse[m][n] for m in report.models])
        for m, r in zip(report.models, placed, strict=True):
            rank_lists[m].append(r)
    relative = {m: {n: rmse[m][n] / rmse["hgb"][n] for n in complete} for m in report.models}
    mean_relative = {m: statistics.mean(v.values()) for m, v in relative.items() if v}
    trainer = mean_relative.get(TRAINER)
    summary = {
        "datasets_complete": complete,
        "mean_relative_rmse": mean_relative,
        "mean_r2": {m: statistics.mean(r2[m][n] for n in complete) for m in report.models}
        if complete
        else {},
        "mean_rank": {m: statistics.mean(v) for m, v in rank_lists.items() if v},
        "train_seconds": {
            m: sum(r.seconds for r in report.runs if r.model == m) for m in report.models
        },
        "trainer_vs_gbdt": {n: trainer_versus_gbdt(rmse, n) for n in names if n in rmse[TRAINER]},
        "goal": {
            "mean_relative_rmse_at_most": RELATIVE_RMSE_GOAL,
            "met": None if trainer is None else trainer <= RELATIVE_RMSE_GOAL,
        },
    }
    if SWEEP in report.models:
        summary["sweep_goal"] = sweep_goal(mean_relative, higher_is_better=False)
    return summary


def trainer_versus_gbdt(rmse: dict[str, dict[str, float]], name: str) -> dict[str, Any]:
    """The trainer's RMSE on dataset ``name`` over HistGradientBoosting's and over the best
    (lowest) GBDT's, with that GBDT's name."""
    trainer = rmse[TRAINER][name]
    best = min((v[name], m) for m, v in rmse.items() if m in GBDTS and name in v)
    hgb = rmse.get("hgb", {}).get(name)
    return {
        "over_hgb": None if hgb is None else trainer / hgb,
        "best": best[1],
        "over_best": trainer / best[0],
    }


def value_cell(values: Sequence[float], decimals: int | None = None) -> str:
    """Mean ± std of values, both to ``decimals`` places (default: those that show the mean to
    4 significant digits; targets range from ratings of 1-10 to prices of 10⁵)."""
    if not values:
        return "failed"
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    if decimals is None:
        magnitude = math.floor(math.log10(abs(mean))) if mean else 0
        decimals = max(0, 3 - magnitude)
    return f"{mean:,.{decimals}f} ± {spread:,.{decimals}f}"


def markdown_regression(report: Report[RegressionRun]) -> str:
    """The RMSE table (a row per dataset, a column per model, then the summary rows), the R²
    table and the training-time table."""
    s, models = report.summary, report.models
    head = "| dataset | rows train / val / test | features num / cat | target learnt as | "
    lines = [head + " | ".join(models) + " | trainer / hgb |"]
    lines.append("|---|---|---|---|" + "---:|" * (len(models) + 1))
    for d in report.datasets:
        log = isinstance(d, RegressionDatasetInfo) and d.log_target
        cells = [value_cell(run_values(report.runs, d.name, m, "rmse")) for m in models]
        versus = s["trainer_vs_gbdt"].get(d.name)
        over_hgb = None if versus is None else versus["over_hgb"]
        cells.append("" if over_hgb is None else f"{over_hgb:.3f}")
        lines.append(
            f"| {d.name} | {rows_cell(d)} | {d.numeric} / {d.categorical} | "
            f"{'log1p, standardised' if log else 'standardised'} | " + " | ".join(cells) + " |"
        )
    blank = "| | | |"
    lines.append(
        f"| **mean RMSE / hgb's** {blank} "
        + " | ".join(f"{s['mean_relative_rmse'].get(m, float('nan')):.3f}" for m in models)
        + " | |"
    )
    lines.append(
        f"| **mean rank** {blank} "
        + " | ".join(f"{s['mean_rank'].get(m, float('nan')):.2f}" for m in models)
        + " | |"
    )
    lines += goal_lines(report)
    lines += ["", "Test R², mean ± std over seeds:", ""]
    lines += ["| dataset | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for d in report.datasets:
        cells = [value_cell(run_values(report.runs, d.name, m, "r2"), decimals=3) for m in models]
        lines.append(f"| {d.name} | " + " | ".join(cells) + " |")
    lines.append(
        "| **mean R²** | "
        + " | ".join(f"{s['mean_r2'].get(m, float('nan')):.3f}" for m in models)
        + " |"
    )
    return "\n".join(lines + seconds_table(report))


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


def registry(task: str) -> dict[str, datasets.Dataset]:
    """The datasets of a task."""
    return datasets.REGRESSION_DATASETS if task == "regression" else datasets.DATASETS


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    dags_on_path()
    trials = len(sweep_configs(0, quick=False))
    p = argparse.ArgumentParser(prog="python -m bench.panel", description=__doc__)
    p.add_argument(
        "--task",
        choices=TASKS,
        default="classification",
        help="classification (labels: accuracy) or regression (numbers: RMSE, R²)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{', '.join(QUICK_DATASETS)} (regression: {', '.join(REGRESSION_QUICK_DATASETS)}), "
        f"1 seed, {QUICK_MAX_TRAIN_ROWS} training rows, trainer {' '.join(QUICK_FLAGS)}: a smoke "
        "run",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help=f"also the DAG's default sweep as the model {SWEEP!r}: its {trials} trials, the "
        "winner picked on validation data by the DAG's select_best, scored on the test rows as "
        f"the defaults are (seconds: the sum of its trials); with --quick its first "
        f"{QUICK_SWEEP_TRIALS} trials, each with {' '.join(QUICK_FLAGS)} (default: off)",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (split and training)")
    p.add_argument(
        "--datasets",
        default=None,
        help=f"comma-separated, from {', '.join(datasets.DATASETS)} (regression: "
        f"{', '.join(datasets.REGRESSION_DATASETS)}) (default: all; --quick: "
        f"{','.join(QUICK_DATASETS)}, regression {','.join(REGRESSION_QUICK_DATASETS)})",
    )
    p.add_argument(
        "--max-train-rows",
        type=int,
        default=None,
        help="cap on training rows per dataset, 0: none (default: "
        f"{MAX_TRAIN_ROWS or 'none'}; regression {REGRESSION_MAX_TRAIN_ROWS or 'none'})",
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
    known = registry(args.task)
    quick = REGRESSION_QUICK_DATASETS if args.task == "regression" else QUICK_DATASETS
    default = quick if args.quick else tuple(known)
    args.datasets = [d for d in args.datasets.split(",") if d] if args.datasets else list(default)
    unknown = [d for d in args.datasets if d not in known]
    if unknown or not args.datasets:
        p.error(
            f"--datasets: unknown {unknown} for --task {args.task}; choose from {', '.join(known)}"
        )
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    if args.max_train_rows is not None and args.max_train_rows < 0:
        p.error("--max-train-rows must be 0 (no cap) or more")
    if args.quick:
        args.seeds = 1
        args.max_train_rows = args.max_train_rows or QUICK_MAX_TRAIN_ROWS
    return args


def measure(args: argparse.Namespace, command: str) -> Report[Any]:
    models, skipped = available_models()
    if args.sweep:
        models.insert(1, SWEEP)
    regression = args.task == "regression"
    infos: list[DatasetInfo] = []
    runs: list[Any] = []
    records: list[SweepRecord] = []
    for name in args.datasets:
        print(f"{name}:", file=sys.stderr, flush=True)
        score = score_regression_dataset if regression else score_dataset
        info, scored, swept = score(registry(args.task)[name], args, models)
        infos.append(info)
        runs += scored
        records += swept
    report: Report[Any] = Report(
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        machine=machine() | {k: _version(k) for k in GBDT_MODULES.values()},
        command=command,
        seeds=args.seeds,
        quick=args.quick,
        models=models,
        skipped=skipped,
        datasets=infos,
        runs=runs,
        sweep=sweep_plan(args.quick) if args.sweep else None,
        sweeps=records,
    )
    report.summary = summarise_regression(report) if regression else summarise(report)
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
        print(markdown_regression(report) if args.task == "regression" else markdown(report))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
