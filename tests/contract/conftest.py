"""Valid example results of every step, shared by the contract tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from contract.results import (
    AnomalyCounts,
    DeployResult,
    DriftSummary,
    EvaluateResult,
    PreprocessResult,
    ScoreResult,
    SplitCounts,
    StepResult,
    TrainResult,
    ValidateResult,
)

TRAIN_FIELDS: dict[str, Any] = {
    "accuracy": 0.91,
    "f1_score": 0.87,
    "loss": 0.31,
    "model_path": "models:/credit-risk/4",
    "run_id": "0123456789abcdef",
    "experiment_name": "credit-risk",
    "samples_per_sec": 12345.5,
    "epochs": 3,
    "device": "cpu",
    "hyperparameters": {"lr": 0.001, "batch_size": 256, "amp": False, "optimizer": "adamw"},
    "world_size": 1,
    "resumed": False,
    "data_fingerprint": "sha256:" + "3" * 64,
}

EVALUATE_FIELDS: dict[str, Any] = {
    "should_deploy": True,
    "reason": "promoted",
    "new_accuracy": 0.91,
    "new_f1_score": 0.87,
    "baseline_accuracy": 0.89,
    "improvement": 0.02,
    "champion_version": 3,
    "champion_problem": None,
    "run_id": "0123456789abcdef",
    "model_path": "models:/credit-risk/4",
    "model_name": "credit-risk",
    "test_rows": 450,
    "improvement_low": 0.005,
    "improvement_high": 0.035,
    "confidence": 0.95,
    "bootstrap_samples": 2000,
    "metrics": {
        "accuracy": 0.91,
        "f1_score": 0.87,
        "roc_auc": 0.95,
        "log_loss": 0.25,
        "brier_score": 0.07,
        "ece": 0.02,
    },
    "baseline_metrics": None,
    "worst_slice": {"column": "region", "value": "north", "rows": 60, "accuracy": 0.85},
    "baseline_worst_slice": None,
    "champion_run_id": "fedcba9876543210",
    "data_fingerprint": "sha256:" + "0" * 64,
}


def example_results() -> dict[str, StepResult]:
    out = "s3://pipeline/processed/2024-01-02"
    return {
        "validate": ValidateResult(
            source="s3://raw/2024-01-02/data.parquet",
            date="2024-01-02",
            row_count=3000,
            column_count=10,
            anomaly_counts=AnomalyCounts(error=0, warning=2),
            schema_uri="s3://pipeline/validate/2024-01-02/schema.json",
            schema_origin="store",
            report_uri="s3://pipeline/validate/2024-01-02/anomalies.json",
            html_report_uri="s3://pipeline/validate/2024-01-02/report.html",
            fingerprint="sha256:" + "1" * 64,
            drift=DriftSummary(
                reference_uri="s3://raw/2024-01-01/data.parquet",
                columns_compared=10,
                max_psi=0.12,
                max_psi_column="income",
                drifted_count=1,
                drifted_columns=["income"],
            ),
        ),
        "preprocess": PreprocessResult(
            output_uri=out,
            train_uri=f"{out}/train.parquet",
            val_uri=f"{out}/val.parquet",
            test_uri=f"{out}/test.parquet",
            raw_test_uri=f"{out}/raw/test.parquet",
            transform_uri=f"{out}/transform.json",
            manifest_uri=f"{out}/manifest.json",
            fingerprint="sha256:" + "2" * 64,
            row_counts=SplitCounts(train=2100, val=450, test=450),
            feature_count=11,
            target="default",
            classes=["no", "yes"],
        ),
        "train": TrainResult(**TRAIN_FIELDS),
        "evaluate": EvaluateResult(**EVALUATE_FIELDS),
        "deploy": DeployResult(
            action="deploy",
            model_name="credit-risk",
            version=4,
            alias="champion",
            previous_version=3,
            run_id="0123456789abcdef",
            registered=True,
            alias_moved=True,
            smoke_test_rows=20,
        ),
        "score": ScoreResult(
            model_uri="models:/credit-risk@champion",
            model_name="credit-risk",
            model_version=4,
            model_run_id="0123456789abcdef",
            input_uri="s3://raw/2024-01-02/to_score.parquet",
            input_fingerprint="sha256:" + "4" * 64,
            output_uri="s3://pipeline/scores/2024-01-02/predictions.parquet",
            output_format="parquet",
            output_sha256="sha256:" + "5" * 64,
            manifest_uri="s3://pipeline/scores/2024-01-02/predictions.parquet.manifest.json",
            rows=1200,
            batches=1,
            columns=["customer_id", "prediction", "proba_no", "proba_yes"],
        ),
    }


@pytest.fixture
def results() -> dict[str, StepResult]:
    """One valid result per step."""
    return example_results()


@pytest.fixture
def train_result() -> Callable[..., TrainResult]:
    """A valid TrainResult with some fields overridden (validated)."""
    return lambda **overrides: TrainResult(**{**TRAIN_FIELDS, **overrides})
