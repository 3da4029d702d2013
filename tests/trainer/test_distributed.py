"""``torchrun --nproc_per_node=2 -m trainer`` on the CPU (gloo): two data-parallel processes
train one model; rank 0 alone logs one MLflow run and writes the one return.json."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from contract.xcom import read_result
from tests.trainer.workspace import FAST_TRAIN_FLAGS, build_workspace, mlflow_client

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def test_two_processes_train_one_model_and_write_one_result(
    isolated_env: Path, xcom_file: Path, sample_frame: pd.DataFrame
) -> None:
    workspace = build_workspace(isolated_env / "ws", sample_frame)
    command = [
        str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "trainer",
        "--data-path", str(workspace.data), "--experiment-name", "ddp", *FAST_TRAIN_FLAGS,
        "--system-metrics-interval", "0",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=500)
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
