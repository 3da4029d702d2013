"""``python -m trainer`` on a regression target, end to end: preprocess a numeric target with
``--task regression``, train, and check the result (task, RMSE, MAE, R² of the validation rows
in the target's units), the MLflow run (per-epoch val_rmse/val_mae/val_r2/val_loss, the task as
param and tag) and the served model (predictions in the target's units); ``--loss huber`` with
an ensemble; the flags of the other task refused with exit 2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common import dataset
from tests.step_failures import assert_step_fails
from tests.trainer.workspace import (
    Workspace,
    features_of,
    load_model,
    mlflow_client,
    run_ok,
    train,
    workspace_env,
)
from trainer.cli import main

pytestmark = pytest.mark.integration

TARGET = "price"
EXPERIMENT = "regression"
# Enough optimiser steps for a clear fit of ~1,000 training rows, still a few seconds.
REGRESSION_FLAGS = ("--epochs", "30", "--batch-size", "64", "--lr", "3e-3", "--seed", "3")


def regression_frame(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A price: a nonlinear function of two numeric columns and a categorical one, plus noise;
    one numeric column is noise only."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(-2, 2, rows), rng.normal(0, 1, rows)
    city = rng.choice(["north", "south", "east"], rows)
    effect = pd.Series(city).map({"north": 15.0, "south": -10.0, "east": 0.0}).to_numpy()
    price = 200 + 40 * np.sin(1.5 * x1) + 12 * x2**2 + effect + rng.normal(0, 4, rows)
    noise = rng.normal(0, 1, rows)
    return pd.DataFrame({"x1": x1, "x2": x2, "noise": noise, "city": city, TARGET: price})


def preprocess_regression(frame: pd.DataFrame, root: Path) -> Path:
    from preprocess.cli import main as preprocess_main

    root.mkdir(parents=True, exist_ok=True)
    source, output = root / "raw.parquet", root / "processed"
    frame.to_parquet(source, index=False)
    argv = ["--input", str(source), "--output", str(output), "--target", TARGET]
    run_ok("preprocess", preprocess_main, [*argv, "--task", "regression"])
    return output


@dataclass(frozen=True)
class RegressionRun:
    workspace: Workspace
    result: dict[str, Any]


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> RegressionRun:
    root = tmp_path_factory.mktemp("regression")
    frame = regression_frame()
    with workspace_env(root):
        data = preprocess_regression(frame, root)
        workspace = Workspace(root=root, home=root / "home", data=data, frame=frame)
        result = train(data, EXPERIMENT, *REGRESSION_FLAGS)
    return RegressionRun(workspace, result)


@pytest.fixture
def store(regression: RegressionRun, monkeypatch: pytest.MonkeyPatch) -> RegressionRun:
    """This test's MLflow calls (and steps) use the regression run's store."""
    regression.workspace.activate(monkeypatch)
    return regression


def val_target(data: Path) -> tuple[np.ndarray, float]:
    """The validation rows' target in its units, and the train rows' mean (the scaling's
    center: the target is not log-scaled here)."""
    transform = dataset.load_transform(str(data))
    scaling = transform.target_scaling
    assert scaling is not None and not scaling.log
    val = dataset.load_split(str(data), transform, "val")
    return scaling.unscale(val.target), scaling.center


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(actual)) ** 2)))


def test_result_carries_the_task_and_its_metrics_in_the_targets_units(
    regression: RegressionRun,
) -> None:
    result = regression.result
    assert result["task"] == "regression"
    assert result["accuracy"] is None and result["f1_score"] is None
    assert result["hyperparameters"]["loss"] == "mse"
    assert 0 < result["mae"] <= result["rmse"] and 0.8 < result["r2"] <= 1 and result["loss"] > 0
    actual, train_mean = val_target(regression.workspace.data)
    # Predicting the training mean is the baseline a regression must clearly beat.
    assert result["rmse"] < 0.4 * rmse(np.full_like(actual, train_mean), actual)
    # R² and RMSE agree on the same validation rows (R² = 1 - MSE / variance).
    assert result["r2"] == pytest.approx(1 - result["rmse"] ** 2 / actual.var(), rel=1e-6)


def test_run_logs_the_tasks_metrics_each_epoch_and_records_the_task(
    store: RegressionRun,
) -> None:
    result = store.result
    client = mlflow_client()
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in ("rmse", "mae", "r2", "loss"):
        assert metrics[name] == result[name], name
    assert "accuracy" not in metrics and "val_accuracy" not in metrics
    assert 1 <= int(metrics["best_epoch"]) <= result["epochs"]
    for name in ("val_rmse", "val_mae", "val_r2", "val_loss"):
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}
        assert sorted(history) == list(range(1, result["epochs"] + 1)), name
    assert (run.data.params["task"], run.data.params["loss"]) == ("regression", "mse")
    assert run.data.tags["task"] == "regression"


def test_served_model_predicts_the_target_in_its_units(store: RegressionRun) -> None:
    raw_test = store.workspace.raw_test()
    model = load_model(store.result["model_path"])
    predicted = model.predict(features_of(raw_test, TARGET))
    assert list(predicted.columns) == ["prediction"]
    values = predicted["prediction"].to_numpy()
    assert values.dtype == np.float64 and np.isfinite(values).all()
    truth = raw_test[TARGET].to_numpy()
    _, train_mean = val_target(store.workspace.data)
    assert rmse(values, truth) < 0.4 * rmse(np.full_like(truth, train_mean), truth)


def test_huber_loss_trains_an_ensemble(store: RegressionRun) -> None:
    flags = ("--loss", "huber", "--ensemble-size", "2", "--epochs", "15")
    result = train(store.workspace.data, EXPERIMENT, *REGRESSION_FLAGS, *flags)
    assert result["hyperparameters"]["loss"] == "huber"
    assert result["hyperparameters"]["ensemble_size"] == 2
    actual, train_mean = val_target(store.workspace.data)
    assert result["rmse"] < 0.5 * rmse(np.full_like(actual, train_mean), actual)
    run = mlflow_client().get_run(result["run_id"])
    names = "width=64 depth=2 ensemble_size=2 lr=0.003 batch_size=64 epochs=15 seed=3 loss=huber"
    assert run.info.run_name == names


def refused(data: Path, flags: list[str], capsys: pytest.CaptureFixture[str], xcom: Path) -> str:
    argv = ["--data-path", str(data), "--experiment-name", "refused", "--device", "cpu", *flags]
    line = assert_step_fails(main, "train", argv, capsys, xcom, flags[0], rc=2)
    client = mlflow_client()
    assert client.get_experiment_by_name("refused") is None  # refused before any run began
    return line


def test_a_regression_loss_on_a_classification_dataset_exits_2_naming_the_flag(
    preprocessed: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(preprocessed, ["--loss", "huber"], capsys, xcom_file)
    assert "classification" in line and "transform.json" in line


@pytest.mark.parametrize("flags", [["--class-weights", "balanced"], ["--label-smoothing", "0.2"]])
def test_classification_settings_on_a_regression_dataset_exit_2_naming_the_flag(
    regression: RegressionRun,
    flags: list[str],
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = refused(regression.workspace.data, flags, capsys, xcom_file)
    assert "regression" in line and TARGET in line
