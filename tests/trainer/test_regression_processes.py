"""A regression trained as the cluster runs it: ``python -m trainer`` stopped by a real SIGTERM
checkpoints, and the same command resumes to exactly the uninterrupted run's result (the
regression metrics survive the checkpoint); ``torchrun --nproc_per_node=2`` (gloo, CPU) trains
one regression model and writes one result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from contract.xcom import read_result
from tests.trainer.test_distributed import torchrun
from tests.trainer.test_preemption import LONG_RUN, REPO, child_env, sigterm_after_first_epoch
from tests.trainer.test_regression_cli import TARGET, preprocess_regression, regression_frame
from tests.trainer.workspace import FAST_TRAIN_FLAGS, features_of, load_model, mlflow_client, train

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REGRESSION_KEYS = ("task", "rmse", "mae", "r2", "loss", "epochs", "hyperparameters")


@pytest.fixture
def data(isolated_env: Path) -> Path:
    return preprocess_regression(regression_frame(), isolated_env / "ws")


def test_sigterm_checkpoints_a_regression_and_the_same_command_resumes_to_the_same_result(
    data: Path, isolated_env: Path, xcom_file: Path
) -> None:
    argv = ["--data-path", str(data), "--experiment-name", "preempted", *FAST_TRAIN_FLAGS]
    command = [sys.executable, "-m", "trainer", *argv, *LONG_RUN]
    xcom_file.unlink()  # preprocess's result
    rc, out, err = sigterm_after_first_epoch(command)
    assert rc == 143, (out[-3000:], err[-3000:])
    assert "val_rmse=" in out and not xcom_file.exists()
    resumed = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    result = read_result("train", xcom_file)
    assert result["resumed"] is True and result["task"] == "regression"
    (killed,) = mlflow_client().search_runs(
        [mlflow_client().get_experiment_by_name("preempted").experiment_id]
    )
    assert (killed.info.run_id, killed.info.status) == (result["run_id"], "FINISHED")

    flags = [*LONG_RUN, "--checkpoint-dir", str(isolated_env / "reference-ckpt")]
    reference = train(data, "uninterrupted", *flags)
    for key in REGRESSION_KEYS:
        assert result[key] == reference[key], key
    raw = features_of(pd.read_parquet(data / "raw" / "test.parquet"), TARGET)
    pd.testing.assert_frame_equal(
        load_model(result["model_path"]).predict(raw),
        load_model(reference["model_path"]).predict(raw),
    )


def test_two_processes_train_one_regression_model(data: Path, xcom_file: Path) -> None:
    done = subprocess.run(
        torchrun(data, "ddp-regression", "--epochs", "4"),
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 of 2 joined (gloo)" in done.stdout
    result = read_result("train", xcom_file)
    assert (result["task"], result["world_size"], result["epochs"]) == ("regression", 2, 4)
    assert result["rmse"] > 0 and result["r2"] <= 1
    client = mlflow_client()
    (run,) = client.search_runs([client.get_experiment_by_name("ddp-regression").experiment_id])
    assert run.info.run_id == result["run_id"] and run.data.tags["task"] == "regression"
    history = client.get_metric_history(run.info.run_id, "val_rmse")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert done.stdout.count(" epoch 1/4 ") == 1  # from rank 0 only
