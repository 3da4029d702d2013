"""A logged served model for the serving tests (one per test module that asks for it) and the
real scoring server, ``mlflow models serve --env-manager local``, started on it.

The model is an untrained network for the sample data, logged by ``log_served_model`` to an
embedded store under the module's temporary folder and downloaded from there to a local model
folder (what ``mlflow models serve -m`` and ``mlflow.pyfunc.load_model`` take)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from demo.sample_data import TARGET
from tests.mlflow_server import free_port, stop
from tests.trainer.workspace import log_untrained_model, preprocess, workspace_env

SERVER_STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LoggedModel:
    root: Path  # the module's folder: the embedded store and the data live under it
    model_dir: Path  # the model's own folder (MLmodel, requirements.txt, artifacts, code)
    rows: pd.DataFrame  # raw rows of the sample data, without the target


def log_model(root: Path, frame: pd.DataFrame) -> LoggedModel:
    """Preprocess ``frame`` under ``root``, log an untrained served model for it to the embedded
    store there, and download the model to ``root / "model"``."""
    from common.tracking import configure_mlflow, run_model_uri

    with workspace_env(root):
        data = preprocess(frame, root)
        run_id = log_untrained_model(data, "serving")
        mlflow = configure_mlflow()
        local = mlflow.artifacts.download_artifacts(
            run_model_uri(run_id), dst_path=str(root / "model")
        )
    rows = pd.read_parquet(data / "raw" / "test.parquet").drop(columns=[TARGET])
    return LoggedModel(root, Path(local), rows.reset_index(drop=True))


@pytest.fixture(scope="module")
def logged_model(
    tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame
) -> LoggedModel:
    return log_model(tmp_path_factory.mktemp("served"), sample_frame)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``/ping`` answers 200 (the model is loaded); fails naming the log otherwise."""
    deadline = time.monotonic() + SERVER_STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"scoring server exited {process.returncode}: {log.read_text()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/ping", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"scoring server not ready after {SERVER_STARTUP_TIMEOUT_S} s: {log}")


@contextlib.contextmanager
def scoring_server(model: str | Path, workdir: Path, allow_pickle: bool = False) -> Iterator[str]:
    """``mlflow models serve -m model --env-manager local`` on 127.0.0.1 and a free port, run
    from ``workdir`` (its log goes there too, and any file MLflow writes stays there); yields
    the server's URL once ``/ping`` answers, and stops the server on exit. ``allow_pickle``:
    for a model MLflow deserialises (sklearn's, even in skops format), not for ours."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", str(model),
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1",
    ]  # fmt: skip
    bin_dir = str(Path(sys.executable).parent)  # MLflow starts ``uvicorn`` found on PATH
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": str(allow_pickle).lower(),
    }
    log = workdir / "scoring-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
        yield url
    finally:
        stop(process)


# One bad value per case, in one row of otherwise good rows: (column, value, what the refusal
# says). Every value is one a JSON request can carry (json.dumps writes inf as Infinity, which
# the scoring server's parser reads back as inf).
BAD_VALUES = [
    ("age", "abc", "are not numbers"),
    ("age", True, "are not numbers"),
    ("income", [1, 2], "are not numbers"),
    ("income", {"a": 1}, "are not numbers"),
    ("debt_ratio", float("inf"), "are not finite"),
    ("debt_ratio", float("-inf"), "are not finite"),
    ("tenure_months", "inf", "are not finite"),
    ("late_payments", 10**400, "beyond the float64 range"),
    ("region", ["north", "south"], "are not single values"),
    ("occupation", {"occ": 1}, "are not single values"),
]


def with_bad_value(rows: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    """``rows`` (as Python objects) with ``value`` in the second row of ``column``."""
    bad = rows.astype(object)
    bad.at[bad.index[1], column] = value
    return bad
