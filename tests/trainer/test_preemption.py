"""``python -m trainer`` as Kubernetes runs it: a real SIGTERM mid-training writes a checkpoint,
marks the MLflow run KILLED, exits 143 with no return.json; the same command then resumes from
the checkpoint (default run-scoped folder), continues the same MLflow run and ends with exactly
the result of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from contract.xcom import read_result
from tests.trainer.workspace import (
    build_workspace,
    features_of,
    load_model,
    mlflow_client,
    train,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
# Many short epochs: the signal lands while training, long before the last epoch.
LONG_RUN = (
    "--epochs", "40", "--batch-size", "32", "--width", "32", "--depth", "1", "--patience", "100",
    "--checkpoint-every-epochs", "0", "--checkpoint-every-minutes", "0",
    "--system-metrics-interval", "0", "--seed", "7",
)  # fmt: skip
EXPERIMENT = "preempted"


def trainer_command(data: Path) -> list[str]:
    from tests.trainer.workspace import FAST_TRAIN_FLAGS

    argv = ["--data-path", str(data), "--experiment-name", EXPERIMENT, *FAST_TRAIN_FLAGS]
    return [sys.executable, "-m", "trainer", *argv, *LONG_RUN]


def child_env() -> dict[str, str]:
    """This test's environment (XCom path, pipeline home), one thread like the in-process run."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def sigterm_after_first_epoch(command: Sequence[str]) -> tuple[int, str, str]:
    """Start ``command``, send SIGTERM once it logged its first epoch; rc, stdout, stderr."""
    with subprocess.Popen(
        command,
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if " epoch 1/40 " in line:
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=300)
        return proc.returncode, "".join(seen) + out, err


def test_sigterm_checkpoints_and_the_same_command_resumes_to_the_same_result(
    isolated_env: Path, xcom_file: Path, sample_frame: pd.DataFrame
) -> None:
    workspace = build_workspace(isolated_env / "ws", sample_frame)
    command = trainer_command(workspace.data)
    rc, out, err = sigterm_after_first_epoch(command)
    assert rc == 143, (out, err)
    last = err.strip().splitlines()[-1]  # a fresh MLflow store logs its set-up before it
    assert last.startswith("train failed: training stopped on request at epoch"), err
    assert "the same command resumes" in last
    assert not xcom_file.exists()
    pointers = list((isolated_env / "home" / "checkpoints").glob("*/latest.json"))
    assert len(pointers) == 1, "the default checkpoint folder is under $PIPELINE_HOME"
    runs = mlflow_client().search_runs([mlflow_client().get_experiment_by_name(EXPERIMENT)
                                        .experiment_id])  # fmt: skip
    assert [r.info.status for r in runs] == ["KILLED"]

    resumed = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    result = read_result("train", xcom_file)
    assert result["run_id"] == runs[0].info.run_id  # the same MLflow run, continued
    assert result["resumed"] is True
    assert mlflow_client().get_run(result["run_id"]).info.status == "FINISHED"
    assert not list(pointers[0].parent.iterdir()), "a finished run's checkpoints are deleted"

    # The uninterrupted run (same flags, its own experiment and so its own checkpoint folder).
    flags = [*LONG_RUN, "--checkpoint-dir", str(isolated_env / "reference-ckpt")]
    reference = train(workspace.data, "uninterrupted", *flags)
    for key in ("accuracy", "f1_score", "loss", "epochs", "hyperparameters"):
        assert result[key] == reference[key], key
    raw = features_of(workspace.raw_test())
    pd.testing.assert_frame_equal(
        load_model(result["model_path"]).predict(raw),
        load_model(reference["model_path"]).predict(raw),
    )
