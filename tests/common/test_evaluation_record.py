"""``recorded_evaluation``: an evaluation kept on a run reads back; a run that was never evaluated
has none; a store that refuses access or cannot be reached is an error, never "not evaluated".

The runs live in the embedded MLflow store; the S3 cases keep their artifacts in moto's S3
server (``s3_bucket``), where access can be refused (HTTP 403) or the endpoint be down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.evaluation_record import record_evaluation, recorded_evaluation
from common.step import StepError
from common.tracking import configure_mlflow
from contract.results import EvaluateResult
from tests.s3 import access_refused
from tools.servers import free_port

METRICS = {
    "accuracy": 0.91, "f1_score": 0.87, "roc_auc": 0.95, "log_loss": 0.25, "brier_score": 0.07,
    "ece": 0.02,
}  # fmt: skip


def evaluation_of(run_id: str) -> EvaluateResult:
    """A first-model decision for ``run_id`` (the numbers do not matter here)."""
    return EvaluateResult(
        should_deploy=True, reason="first_model", new_accuracy=0.91, new_f1_score=0.87,
        baseline_accuracy=None, improvement=None, improvement_low=None, improvement_high=None,
        confidence=0.95, bootstrap_samples=100, metrics=METRICS, baseline_metrics=None,
        worst_slice=None, baseline_worst_slice=None, champion_version=None, champion_run_id=None,
        run_id=run_id, model_path="models:/m-0", model_name="credit", test_rows=450,
        data_fingerprint="sha256:" + "0" * 64,
    )  # fmt: skip


def new_run(artifact_location: str) -> str:
    """A run in a new experiment of this test's embedded store, its artifacts at
    ``artifact_location``."""
    client: Any = configure_mlflow().MlflowClient()
    experiment = client.create_experiment("records", artifact_location=artifact_location)
    return str(client.create_run(experiment).info.run_id)


@pytest.fixture
def s3_run(s3_bucket: str) -> str:
    return new_run(f"s3://{s3_bucket}/mlflow")


def test_a_run_never_evaluated_has_no_recorded_evaluation(tmp_path: Path) -> None:
    assert recorded_evaluation(new_run((tmp_path / "artifacts").as_uri())) is None


def test_an_evaluation_reads_back_from_a_local_store(tmp_path: Path) -> None:
    run_id = new_run((tmp_path / "artifacts").as_uri())
    record_evaluation(evaluation_of(run_id), {}, {})
    assert recorded_evaluation(run_id) == evaluation_of(run_id)


def test_an_evaluation_recorded_before_champion_problem_existed_reads_back(
    tmp_path: Path,
) -> None:
    run_id = new_run((tmp_path / "artifacts").as_uri())
    older = evaluation_of(run_id).model_dump(mode="json", exclude={"champion_problem"})
    configure_mlflow().MlflowClient().log_dict(run_id, older, "evaluation/result.json")
    assert recorded_evaluation(run_id) == evaluation_of(run_id)


def test_a_result_that_does_not_parse_is_an_error(tmp_path: Path) -> None:
    run_id = new_run((tmp_path / "artifacts").as_uri())
    configure_mlflow().MlflowClient().log_dict(run_id, {"reason": "?"}, "evaluation/result.json")
    with pytest.raises(StepError, match=run_id):
        recorded_evaluation(run_id)


def test_an_evaluation_reads_back_from_s3_and_a_missing_one_is_none(s3_run: str) -> None:
    assert recorded_evaluation(s3_run) is None
    record_evaluation(evaluation_of(s3_run), {}, {})
    assert recorded_evaluation(s3_run) == evaluation_of(s3_run)


def test_a_refused_artifact_store_is_an_error_not_a_missing_evaluation(s3_run: str) -> None:
    record_evaluation(evaluation_of(s3_run), {}, {})
    with access_refused(), pytest.raises(StepError) as raised:
        recorded_evaluation(s3_run)
    assert s3_run in str(raised.value)
    assert "evaluation/result.json" in str(raised.value)


def test_an_unreachable_artifact_store_is_an_error_not_a_missing_evaluation(
    s3_run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_evaluation(evaluation_of(s3_run), {}, {})
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", down)  # MLflow's S3 client for artifacts
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StepError) as raised:
        recorded_evaluation(s3_run)
    assert s3_run in str(raised.value)
    assert down.removeprefix("http://") in str(raised.value)
