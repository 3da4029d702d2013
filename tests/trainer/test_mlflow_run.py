"""The trainer's MLflow run on the embedded store: always ended (FINISHED, KILLED on a requested
stop, FAILED on any error), continued by id on a resume, system metrics sampled while it is
open (and not at all when turned off), epoch metrics logged without waiting."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from common.metrics import ClassificationMetrics
from common.step import StepError
from common.tracking import IMAGE_ENV, configure_mlflow, ensure_experiment
from tests.common.hung_server import hung_server
from tests.trainer.workspace import mlflow_client
from tools.servers import FAST_FAILING_CLIENT
from trainer.loop import EpochRecord, TrainingInterrupted
from trainer.mlflow_run import (
    LOG_INPUTS_ATTEMPTS,
    MetricLogger,
    log_data_inputs,
    training_run,
    training_tags,
)


@pytest.fixture
def experiment(isolated_env: Path) -> str:
    return ensure_experiment("runs")


@pytest.mark.parametrize(
    ("error", "status"),
    [(None, "FINISHED"), (TrainingInterrupted("stop"), "KILLED"), (ValueError("x"), "FAILED")],
)
def test_the_run_always_ends(experiment: str, error: Exception | None, status: str) -> None:
    expected = pytest.raises(type(error)) if error else contextlib.nullcontext()
    with expected, training_run(experiment, None, 0) as run:
        if error:
            raise error
    assert mlflow_client().get_run(run.info.run_id).info.status == status


def test_a_resumed_run_continues_the_same_run_under_its_name(experiment: str) -> None:
    started = training_run(experiment, None, 0, "trial-1 lr=0.01")
    with pytest.raises(TrainingInterrupted), started as first:
        raise TrainingInterrupted("preempted")
    with training_run(experiment, first.info.run_id, 0, "another name") as second:
        assert second.info.run_id == first.info.run_id
    runs = mlflow_client().search_runs([experiment])
    assert [(r.info.run_id, r.info.status) for r in runs] == [(first.info.run_id, "FINISHED")]
    assert runs[0].info.run_name == "trial-1 lr=0.01"


@pytest.mark.slow
def test_system_metrics_are_sampled_while_the_run_is_open(experiment: str) -> None:
    client = mlflow_client()
    with training_run(experiment, None, 0.2) as run:
        deadline = time.monotonic() + 60  # a bound on waiting, not a measurement
        while time.monotonic() < deadline:
            if any(k.startswith("system/") for k in client.get_run(run.info.run_id).data.metrics):
                break
            time.sleep(0.2)
    metrics = client.get_run(run.info.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics
    assert "system/system_memory_usage_megabytes" in metrics
    with training_run(experiment, None, 0) as quiet:
        time.sleep(1.0)  # several sampling intervals of the run before
    assert not [k for k in client.get_run(quiet.info.run_id).data.metrics if "system/" in k]


def test_epoch_metrics_are_queued_and_flushed(experiment: str) -> None:
    with training_run(experiment, None, 0) as run:
        logger = MetricLogger(run.info.run_id)
        for epoch in (1, 2):
            val = ClassificationMetrics(accuracy=0.5 + epoch / 10, f1_score=0.5, loss=1.0 / epoch)
            logger.epoch(EpochRecord(epoch, 0.9 / epoch, val, 1000.0 * epoch))
        logger.flush()
    history = mlflow_client().get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.6), (2, 0.7)]


def test_tags_name_the_image_only_when_it_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IMAGE_ENV, raising=False)
    tags = training_tags("sha256:" + "a" * 64, 2, "s3://b/ckpt")
    assert "image" not in tags
    assert (tags["world_size"], tags["checkpoint_dir"]) == ("2", "s3://b/ckpt")
    monkeypatch.setenv(IMAGE_ENV, "repo/image:1.2")
    assert training_tags("sha256:x", 1, "d")["image"] == "repo/image:1.2"


# One attempt and one retry of one second each, no backoff: one request ends within 2 s.
TIGHT_CLIENT = {**FAST_FAILING_CLIENT, "MLFLOW_HTTP_REQUEST_TIMEOUT": "1"}
SECRET = "s3cr3t-Pa55"


def record(epoch: int) -> EpochRecord:
    val = ClassificationMetrics(accuracy=0.5, f1_score=0.5, loss=1.0)
    return EpochRecord(epoch, 0.9, val, 1000.0)


def test_flush_gives_up_within_the_bound_on_a_server_that_never_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in TIGHT_CLIENT.items():
        monkeypatch.setenv(name, value)
    with hung_server() as server:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url.replace("//", f"//u:{SECRET}@"))
        logger = MetricLogger("a-run-id")
        for epoch in (1, 2, 3):
            logger.epoch(record(epoch))
        start = time.monotonic()
        with pytest.raises(StepError) as failure:
            logger.flush()
        assert time.monotonic() - start < 2.0 + 5.0  # one request's bound, plus slack
        time.sleep(3.0)  # longer than one more request would take
        assert server.accepted == 2, "the batches behind the failed one are dropped"
    message = str(failure.value)
    assert message.startswith(f"cannot reach MLflow at {server.url.replace('//', '//***@')} ")
    assert SECRET not in message


def test_a_run_that_cannot_be_ended_does_not_hide_the_error(
    experiment: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The server stops answering during training: the error that stopped training is what the
    step reports; the failure to mark the run FAILED is a warning."""
    for name, value in TIGHT_CLIENT.items():
        monkeypatch.setenv(name, value)
    with (
        hung_server() as server,
        caplog.at_level(logging.WARNING, logger="trainer.mlflow_run"),
        pytest.raises(ValueError, match="loss is NaN"),
        training_run(experiment, None, 0),
    ):
        configure_mlflow().set_tracking_uri(server.url.replace("//", f"//u:{SECRET}@"))
        raise ValueError("loss is NaN")
    warnings = [r.getMessage() for r in caplog.records if r.name == "trainer.mlflow_run"]
    assert len(warnings) == 1 and "could not mark MLflow run" in warnings[0], warnings
    assert "http://***@127.0.0.1" in warnings[0] and SECRET not in warnings[0]


@pytest.fixture
def data_path(tmp_path: Path, sample_frame: Any) -> Path:
    from tests.trainer.workspace import preprocess

    return preprocess(sample_frame.head(400), tmp_path)


def refusing_log_inputs(monkeypatch: pytest.MonkeyPatch, refusals: int) -> list[int]:
    """The tracking store refuses the first ``refusals`` calls as it does the second of two
    trials inserting the same dataset at once (a unique key); the calls are counted."""
    import mlflow

    real = mlflow.log_inputs
    calls: list[int] = []

    def log_inputs(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) <= refusals:
            raise mlflow.exceptions.MlflowException(
                "duplicate key value violates unique constraint"
            )
        real(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_inputs", log_inputs)
    monkeypatch.setattr("trainer.mlflow_run.LOG_INPUTS_RETRY_S", 0.0)
    return calls


def test_datasets_another_trial_inserted_at_the_same_time_are_linked_on_a_retry(
    experiment: str, data_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = refusing_log_inputs(monkeypatch, refusals=1)
    with training_run(experiment, None, 0) as run:
        log_data_inputs(str(data_path), "sha256:" + "0" * 64)
    inputs = mlflow_client().get_run(run.info.run_id).inputs.dataset_inputs
    assert len(calls) == 2
    assert sorted(t.value for i in inputs for t in i.tags if t.key == "mlflow.data.context") == [
        "source",
        "training",
        "validation",
    ]


def test_datasets_the_store_never_takes_leave_the_training_going_with_a_warning(
    experiment: str,
    data_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = refusing_log_inputs(monkeypatch, refusals=99)
    with caplog.at_level(logging.WARNING), training_run(experiment, None, 0) as run:
        log_data_inputs(str(data_path), "sha256:" + "0" * 64)
    assert len(calls) == LOG_INPUTS_ATTEMPTS
    assert "not logging the run's datasets: duplicate key" in caplog.text
    assert mlflow_client().get_run(run.info.run_id).info.status == "FINISHED"
