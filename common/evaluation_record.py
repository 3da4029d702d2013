"""Keep an evaluation on the candidate's MLflow run: test metrics, the decision as tags, the full
result and per-slice accuracies as JSON artifacts, and the plots as images. The deployer reads
the result back from here (``recorded_evaluation``)."""

from __future__ import annotations

import json
import logging
import posixpath
import tempfile
import time
from pathlib import Path
from typing import Any

from common.step import StepError
from common.tracking import (
    configure_mlflow,
    is_not_found,
    is_unreachable,
    redact_uri,
    shown_tracking_uri,
)
from contract.results import EvaluateResult, SliceAccuracy, SliceError

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
    }
    worst = result.worst_slice  # regression: the highest RMSE
    if isinstance(worst, SliceError):
        values["test_worst_slice_rmse"] = worst.rmse
    elif worst is not None:
        values["test_worst_slice_accuracy"] = worst.accuracy
    return {k: v for k, v in values.items() if v is not None}


def evaluation_tags(result: EvaluateResult) -> dict[str, str]:
    """The decision in words a person can filter runs by in the MLflow UI."""
    champion = "none" if result.champion_version is None else str(result.champion_version)
    values = {
        "reason": result.reason,
        "should_deploy": str(result.should_deploy),
        "model_name": result.model_name,
        "champion_version": champion,
        "champion_problem": result.champion_problem or "none",
        "data_fingerprint": result.data_fingerprint,
        "confidence": str(result.confidence),
    }
    return {TAG_PREFIX + k: v for k, v in values.items()}


def record_evaluation(
    result: EvaluateResult,
    slices: dict[str, list[SliceAccuracy]] | dict[str, list[SliceError]],
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
    """The last evaluation recorded on run ``run_id``, or None when it was never evaluated (no
    ``evaluation/result.json`` among its artifacts). An artifact store that cannot be read
    (access refused, unreachable) or a result that does not parse is a StepError naming the
    run; a tracking server that cannot be reached is raised as MLflow reports it (callers turn
    it into a StepError naming the server with ``reaching_mlflow``)."""
    mlflow = configure_mlflow()
    # Not through a runs:/ URI: MLflow reports every failure to download one as "not found".
    root = run_artifact_uri(run_id)
    try:
        listed = mlflow.artifacts.list_artifacts(artifact_uri=f"{root}/{FOLDER}")
        names = {posixpath.basename(f.path) for f in listed if not f.is_dir}
        if posixpath.basename(RESULT_FILE) not in names:
            return None
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{root}/{RESULT_FILE}", dst_path=folder
            )
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        return EvaluateResult.model_validate(data)
    except Exception as exc:
        if is_unreachable(exc):
            raise
        # A failed download names the file on one line and the cause on the next.
        cause = redact_uri(" ".join(str(exc).split())[:400]) or type(exc).__name__
        raise StepError(
            f"cannot read the evaluation recorded on run {run_id} ({root}/{RESULT_FILE}): {cause}"
        ) from exc


def run_artifact_uri(run_id: str) -> str:
    """Where run ``run_id`` keeps its artifacts; a StepError naming the tracking URI when the
    run does not exist."""
    client = configure_mlflow().MlflowClient()
    try:
        return str(client.get_run(run_id).info.artifact_uri)
    except Exception as exc:
        if is_not_found(exc):
            raise StepError(f"run {run_id}: no such run at {shown_tracking_uri()}") from exc
        raise
