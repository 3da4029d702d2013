"""The trainer's checkpoint and failure handling through ``main``: a checkpoint folder of another
run is refused, a diverged run writes no checkpoint, any failure ends the MLflow run FAILED,
streamed data trains like device-resident data, and the operation flags are checked."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch

from contract.xcom import read_result, xcom_path
from tests.step_failures import assert_step_fails
from tests.trainer.workspace import FAST_TRAIN_FLAGS, train
from trainer.checkpoint import CheckpointStore, identity_hash
from trainer.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.integration]

QUIET = ("--system-metrics-interval", "0")


@pytest.fixture(autouse=True)
def mlflow_store(isolated_env: Path) -> None:
    """The embedded store exists before a step runs (creating it logs to stderr)."""
    from common.tracking import ensure_experiment

    ensure_experiment("setup")


def argv(data: Path, experiment: str, *flags: str) -> list[str]:
    return ["--data-path", str(data), "--experiment-name", experiment, *FAST_TRAIN_FLAGS, *flags]


def statuses(experiment: str) -> list[str]:
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    return [r.info.status for r in runs]


def test_a_checkpoint_of_another_run_is_refused(
    preprocessed: Path, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ckpt"
    theirs = {"experiment_name": "x", "data_path": str(preprocessed), "data_fingerprint": "f",
              "config": {"lr": 0.5}}  # fmt: skip
    meta = json.dumps({"identity": theirs, "mlflow_run_id": "r"})
    CheckpointStore(str(folder)).save({"meta": meta}, "e1", identity_hash(theirs))
    line = assert_step_fails(
        main,
        "train",
        argv(preprocessed, "x", "--checkpoint-dir", str(folder), *QUIET),
        capsys,
        xcom_file,
        f"--checkpoint-dir {folder} holds a checkpoint of a different run",
        "lr",
    )
    assert "data_fingerprint" in line
    assert (folder / "latest.json").exists(), "the other run's checkpoint is left alone"


def test_a_checkpoint_the_trainer_did_not_write_is_refused(
    preprocessed: Path, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint with a valid pointer and sha256 but no run description (meta) in it."""
    folder = tmp_path / "ckpt"
    name = CheckpointStore(str(folder)).save({"weights": torch.zeros(2)}, "e1", "x")
    assert_step_fails(
        main,
        "train",
        argv(preprocessed, "x", "--checkpoint-dir", str(folder), *QUIET),
        capsys,
        xcom_file,
        f"{folder}/{name} holds no run description of the trainer",
    )


def test_a_diverged_run_writes_no_checkpoint_and_ends_failed(
    preprocessed: Path, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ckpt"
    flags = ("--lr", "1e6", "--optimizer", "sgd", "--grad-clip", "0", "--warmup-epochs", "0",
             "--checkpoint-dir", str(folder), "--checkpoint-every-epochs", "1", *QUIET)  # fmt: skip
    assert_step_fails(main, "train", argv(preprocessed, "nan", *flags), capsys, xcom_file, "--lr")
    assert not (folder / "latest.json").exists()
    assert statuses("nan") == ["FAILED"]


def test_any_failure_after_training_ends_the_run_failed(
    preprocessed: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path,
) -> None:  # fmt: skip
    def broken(*args: object) -> None:
        raise OSError("artifact store unreachable")

    monkeypatch.setattr("trainer.job.log_served_model", broken)
    assert_step_fails(
        main, "train", argv(preprocessed, "boom", *QUIET), capsys, xcom_file, "unreachable"
    )
    assert statuses("boom") == ["FAILED"]
    # Training finished, so its last checkpoint stays: a retry skips straight to logging.
    pointers = list((isolated_env / "home" / "checkpoints").glob("*/latest.json"))
    assert len(pointers) == 1


def test_a_retry_after_a_failure_resumes_into_the_same_run(
    preprocessed: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr("trainer.job.log_served_model", lambda *a: (_ for _ in ()).throw(OSError()))
        assert main(argv(preprocessed, "retry", *QUIET)) == 1
    failed = mlflow.search_runs(experiment_names=["retry"], output_format="list")
    result = train(preprocessed, "retry", *QUIET)
    assert result["run_id"] == failed[0].info.run_id
    assert statuses("retry") == ["FINISHED"]
    history = mlflow.MlflowClient().get_metric_history(result["run_id"], "val_loss")
    assert sorted(m.step for m in history) == [1, 2], "epochs are not logged twice"
    assert not list((isolated_env / "home" / "checkpoints").glob("*/latest.json"))


def models_of(run_id: str) -> list[str]:
    """Every model the run logged (any name, any status)."""
    run = mlflow.get_run(run_id)
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    return [m.model_id for m in found]


@pytest.mark.parametrize(
    "fault",
    [PermissionError("access denied"), RuntimeError("pod killed")],
    ids=["refused", "killed"],
)
def test_a_retry_after_the_model_was_logged_reuses_it(
    preprocessed: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path, fault: Exception
) -> None:
    """The model is logged, then deleting the checkpoints fails (refused: the step still
    succeeds; killed: it does not). The same command resumes into the same run and returns the
    model that is there: one model in the run, the same URI in both results."""

    def fail(store: CheckpointStore) -> None:
        raise fault

    with monkeypatch.context() as patch:
        patch.setattr(CheckpointStore, "clear", fail)
        rc = main(argv(preprocessed, "again", *QUIET))
    assert rc == (0 if isinstance(fault, OSError) else 1)
    [run] = mlflow.search_runs(experiment_names=["again"], output_format="list")
    [logged] = models_of(run.info.run_id)
    if rc == 0:
        assert read_result("train", xcom_path())["model_path"] == f"models:/{logged}"
    result = train(preprocessed, "again", *QUIET)
    assert (result["run_id"], result["resumed"]) == (run.info.run_id, True)
    assert models_of(run.info.run_id) == [logged]
    assert result["model_path"] == f"models:/{logged}"
    assert statuses("again") == ["FINISHED"]
    assert not list((isolated_env / "home" / "checkpoints").glob("*/latest.json"))


def test_a_retry_records_the_integrity_of_a_model_logged_without_a_record(
    preprocessed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attempt before stopped between logging the model and recording the sha256 of its
    files: the resumed run records it (run params are keyed by the model's id) and the model
    then loads verified."""
    from tabular_model import integrity

    with monkeypatch.context() as patch:
        patch.setattr(integrity, "record_logged_model", lambda *a: (_ for _ in ()).throw(OSError()))
        assert main(argv(preprocessed, "unrecorded", *QUIET)) == 1
    [run] = mlflow.search_runs(experiment_names=["unrecorded"], output_format="list")
    [logged] = models_of(run.info.run_id)
    assert not integrity.has_record(logged, run.info.run_id)
    result = train(preprocessed, "unrecorded", *QUIET)
    assert (result["model_path"], result["resumed"]) == (f"models:/{logged}", True)
    assert integrity.has_record(logged, run.info.run_id)
    integrity.load_verified_model(result["model_path"])


def test_streamed_training_data_gives_the_same_model(preprocessed: Path) -> None:
    device = train(preprocessed, "placement", "--data-placement", "device", *QUIET)
    streamed = train(preprocessed, "placement", "--data-placement", "stream", *QUIET)
    for key in ("accuracy", "f1_score", "loss", "epochs"):
        assert streamed[key] == device[key], key
    tags = mlflow.MlflowClient().get_run(streamed["run_id"]).data.tags
    assert tags["data_placement"] == "stream"


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--checkpoint-every-epochs", "-1"], "--checkpoint-every-epochs"),
        (["--checkpoint-every-minutes", "-5"], "--checkpoint-every-minutes"),
        (["--system-metrics-interval", "nan"], "--system-metrics-interval"),
        (["--checkpoint-dir", " "], "--checkpoint-dir"),
    ],
)
def test_bad_operation_flags(
    preprocessed: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str],
    flags: list[str], needle: str,
) -> None:  # fmt: skip
    """A flag out of range is a usage error (exit status 2, as argparse gives)."""
    assert_step_fails(
        main, "train", argv(preprocessed, "x", *flags), capsys, xcom_file, needle, rc=2
    )


def test_unknown_data_placement_is_a_usage_error(
    preprocessed: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--data-placement", "disk"]
    assert_step_fails(
        main, "train", argv(preprocessed, "x", *flags), capsys, xcom_file, "--data-placement", rc=2
    )
