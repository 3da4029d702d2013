"""``python -m trainer`` as a pod runs it: a successful run prints nothing on stderr (which holds
only a failed step's reason; MLflow's own log lines go to stdout with the step's) and leaves a
return.json that other users can read (the XCom sidecar may run as another user)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from contract.xcom import read_result
from tests.trainer.workspace import FAST_TRAIN_FLAGS

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


def test_a_successful_run_leaves_stderr_empty(preprocessed: Path, xcom_file: Path) -> None:
    argv = ["--data-path", str(preprocessed), "--experiment-name", "quiet", *FAST_TRAIN_FLAGS]
    done = subprocess.run(
        [sys.executable, "-m", "trainer", *argv, "--epochs", "1", "--width", "8"],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "mlflow" in done.stdout  # MLflow's lines are kept, on stdout
    assert read_result("train", xcom_file)["epochs"] == 1
    assert stat.S_IMODE(xcom_file.stat().st_mode) == 0o644
