"""Keep an evaluation on the candidate's MLflow run: test metrics, the decision as tags, the full
result and per-slice accuracies as JSON artifacts, and the plots as images. The deployer reads
the result back from here (``recorded_evaluation``)."""

from __future__ import annotations

import logging
import time
from typing import Any

from common.tracking import configure_mlflow, is_not_found
from contract.results import EvaluateResult, SliceAccuracy

log = logging.getLogger(__name__)

FOLDER = "evaluation"
RESULT_FILE = f"{FOLDER}/result.json"
SLICES_FILE = f"{FOLDER}/slices.json"
TAG_PREFIX = "evaluation."


def run_metrics(result: EvaluateResult) -> dict[str, float]:
    """``test_<metric>`` for the candidate's metrics plus the gain and its interval."""
    values: dict[str, float | None] = {
        f"test_{k}": v for k, v in result.metrics.model_dump().items()
    }
    values |= {
        "test_improvement": result.improvement,
        "test_improvement_low": result.improvement_low,
        "test_improvement_high": result.improvement_high,
        "test_worst_slice_accuracy": None
        if result.worst_slice is None
        else result.worst_slice.accuracy,
    }
    return {k: v for k, v in values.items() if v is not None}


def evaluation_tags(result: EvaluateResult) -> dict[str, str]:
    """The decision in words a person can filter runs by in the MLflow UI."""
    champion = "none" if result.champion_version is None else str(result.champion_version)
    values = {
        "reason": result.reason,
        "should_deploy": str(result.should_deploy),
        "model_name": result.model_name,
        "champion_version": champion,
        "data_fingerprint": result.data_fingerprint,
        "confidence": str(result.confidence),
    }
    return {TAG_PREFIX + k: v for k, v in values.items()}


def record_evaluation(
    result: EvaluateResult,
    slices: dict[str, list[SliceAccuracy]],
    figures: dict[str, Any],
) -> None:
    """Log everything on ``result.run_id``: metrics and tags in one batch, then artifacts."""
    mlflow = configure_mlflow()
    from mlflow.entities import Metric, RunTag

    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(
        result.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in run_metrics(result).items()],
        tags=[RunTag(k, v) for k, v in evaluation_tags(result).items()],
    )
    client.log_dict(result.run_id, result.model_dump(mode="json"), RESULT_FILE)
    per_model = {name: [s.model_dump() for s in found] for name, found in slices.items()}
    client.log_dict(result.run_id, per_model, SLICES_FILE)
    for name, figure in figures.items():
        client.log_figure(result.run_id, figure, f"{FOLDER}/{name}")


def recorded_evaluation(run_id: str) -> EvaluateResult | None:
    """The last evaluation recorded on the run, or None when it was never evaluated."""
    mlflow = configure_mlflow()
    try:
        data = mlflow.artifacts.load_dict(f"runs:/{run_id}/{RESULT_FILE}")
    except Exception as exc:
        if is_not_found(exc) or isinstance(exc, OSError) or "No such file" in str(exc):
            return None
        raise
    return EvaluateResult.model_validate(data)
