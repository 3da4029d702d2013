"""Regression models for the scorer's and the deployer's tests: the demo's delivery-time sample
preprocessed with ``--task regression`` and trained for a few epochs (a real model, a few
seconds on one core), and a network of the same data whose weights are all NaN (a broken model
that logs and loads like any other, then predicts NaN)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from demo.sample_data import REGRESSION_TARGET, generate_regression
from tests.trainer.workspace import Workspace, run_ok, train, workspace_env

EXPERIMENT = "regression-candidates"
ROWS = 1200
# Enough optimiser steps for a clear fit of ~800 training rows.
TRAIN_FLAGS = ("--epochs", "8", "--batch-size", "64", "--lr", "3e-3", "--seed", "3")


@dataclass(frozen=True)
class RegressionRuns:
    """A workspace with a trained regression run and a run whose model predicts NaN."""

    workspace: Workspace
    trained: dict[str, Any]  # the train result
    broken_run_id: str

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[REGRESSION_TARGET]).reset_index(drop=True)


def preprocess_regression(frame: pd.DataFrame, root: Path) -> Path:
    from preprocess.cli import main

    root.mkdir(parents=True, exist_ok=True)
    source, output = root / "raw.parquet", root / "processed"
    frame.to_parquet(source, index=False)
    argv = ["--input", str(source), "--output", str(output), "--target", REGRESSION_TARGET]
    result = run_ok("preprocess", main, [*argv, "--task", "regression"])
    assert result["task"] == "regression"
    return output


def log_nan_regression_model(data: Path, experiment: str = EXPERIMENT) -> str:
    """Log a regression network for the preprocess output ``data`` with every weight NaN, as
    a run's served model (with its integrity record); returns the run id."""
    import torch

    from common import dataset
    from common.tracking import configure_mlflow, ensure_experiment
    from tabular_model.network import NetworkConfig, TabularMLP
    from tabular_model.packaging import log_served_model

    transform = dataset.load_transform(str(data))
    config = NetworkConfig(
        numeric_features=len(transform.numeric_feature_names),
        cardinalities=tuple(c.cardinality for c in transform.categorical),
        n_classes=1,
        width=8,
        depth=1,
        dropout=0.0,
        task="regression",
    )
    net = TabularMLP(config)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.fill_(float("nan"))
    example = pd.read_parquet(data / "raw" / "sample.parquet")
    mlflow = configure_mlflow()
    with mlflow.start_run(experiment_id=ensure_experiment(experiment)) as run:
        log_served_model(net, transform, example)
    return str(run.info.run_id)


def build_regression_runs(root: Path) -> RegressionRuns:
    """Preprocess, train and log the broken model under ``root`` (its own store)."""
    with workspace_env(root):
        frame = generate_regression(ROWS, seed=5)
        data = preprocess_regression(frame, root)
        workspace = Workspace(root=root, home=root / "home", data=data, frame=frame)
        trained = train(data, EXPERIMENT, *TRAIN_FLAGS)
        broken = log_nan_regression_model(data)
    return RegressionRuns(workspace, trained, broken)


def rmse(predicted: Any, actual: Any) -> float:
    difference = np.asarray(predicted, dtype="float64") - np.asarray(actual, dtype="float64")
    return float(np.sqrt(np.mean(difference**2)))
