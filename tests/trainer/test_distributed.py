"""``torchrun --nproc_per_node=2 -m trainer`` on the CPU (gloo): two data-parallel processes
train one model; rank 0 alone logs one MLflow run and writes the one return.json. A SIGTERM to
torchrun (what Kubernetes sends the pod) stops both processes at the same step with one
checkpoint, and the same command resumes from it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from contract.xcom import read_result
from tests.trainer.test_preemption import LONG_RUN, child_env
from tests.trainer.workspace import FAST_TRAIN_FLAGS, build_workspace, mlflow_client

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def torchrun(data: Path, experiment: str, *flags: str) -> list[str]:
    return [
        str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "trainer",
        "--data-path", str(data), "--experiment-name", experiment, *FAST_TRAIN_FLAGS,
        "--system-metrics-interval", "0", *flags,
    ]  # fmt: skip


def test_two_processes_train_one_model_and_write_one_result(
    isolated_env: Path, xcom_file: Path, sample_frame: pd.DataFrame
) -> None:
    workspace = build_workspace(isolated_env / "ws", sample_frame)
    command = torchrun(workspace.data, "ddp")
    done = subprocess.run(
        command, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=500
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 of 2 joined (gloo)" in done.stdout
    result = read_result("train", xcom_file)
    client = mlflow_client()
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert [r.info.run_id for r in runs] == [result["run_id"]]
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["world_size"] == "2"
    train_rows = int(runs[0].data.params["train_rows"])
    # Each of the 2 processes trains on half of every epoch's permutation (an odd row left out).
    per_epoch = train_rows // 2 * 2
    assert runs[0].data.metrics["train_samples"] == result["epochs"] * per_epoch
    assert result["samples_per_sec"] > 0
    assert result["world_size"] == 2
    assert 0 < result["accuracy"] <= 1
    # One line per epoch, from rank 0 only.
    assert done.stdout.count(" epoch 1/2 ") == 1


def test_sigterm_to_torchrun_checkpoints_once_and_the_same_command_resumes(
    isolated_env: Path, xcom_file: Path, sample_frame: pd.DataFrame
) -> None:
    workspace = build_workspace(isolated_env / "ws", sample_frame)
    checkpoints = isolated_env / "ckpt"
    xcom_file.unlink()  # preprocess's result
    command = torchrun(
        workspace.data, "ddp-preempted", *LONG_RUN, "--checkpoint-dir", str(checkpoints)
    )
    with subprocess.Popen(
        command, cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            if " epoch 1/40 " in line:
                proc.send_signal(signal.SIGTERM)  # to torchrun, which passes it to both ranks
                break
        out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0, out[-3000:] + err[-3000:]
    assert "training stopped on request at epoch" in err, err[-3000:]
    assert not xcom_file.exists()
    assert (checkpoints / "latest.json").is_file()
    client = mlflow_client()
    experiment = client.get_experiment_by_name("ddp-preempted").experiment_id
    (killed,) = client.search_runs([experiment])
    assert killed.info.status == "KILLED"

    resumed = subprocess.run(
        command, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=500
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    result = read_result("train", xcom_file)
    assert (result["run_id"], result["resumed"], result["world_size"]) == (
        killed.info.run_id, True, 2,
    )  # fmt: skip
    assert client.get_run(result["run_id"]).info.status == "FINISHED"
