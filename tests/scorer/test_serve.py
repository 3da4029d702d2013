"""``python -m scorer.serve``: the champion, checked against its integrity record, is served by
MLflow's own scoring server (a real process on loopback) and answers ``/invocations`` as the
model does; a tampered champion is refused before any server starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from scorer.serve import main
from tests.trainer.workspace import features_of, stored_model_file

from .conftest import Champion
from .test_cli import served_predictions

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180  # a bound on waiting, not a performance check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(champion: Champion) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    return {**env, "PIPELINE_HOME": str(champion.workspace.home), "LOG_LEVEL": "INFO"}


@contextmanager
def serving(champion: Champion, port: int) -> Iterator[subprocess.Popen[str]]:
    """``python -m scorer.serve`` in its own process group, stopped (the group) at the end."""
    command = [sys.executable, "-m", "scorer.serve", "--model", champion.uri, "--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=REPO, env=serve_env(champion), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until_up(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited {proc.returncode}: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"no answer on port {port} within {START_TIMEOUT_S} s")


def invoke(port: int, frame: pd.DataFrame) -> Any:
    body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}, default=str).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def test_a_verified_champion_answers_invocations(store: Champion) -> None:
    frame = features_of(store.workspace.raw_test()).head(20)
    port = free_port()
    with serving(store, port) as proc:
        wait_until_up(proc, port)
        answer = invoke(port, frame)
    predicted = pd.DataFrame(answer["predictions"])
    expected = served_predictions(store, frame)
    assert list(predicted.columns) == list(expected.columns)
    assert predicted["prediction"].tolist() == expected["prediction"].tolist()
    pd.testing.assert_frame_equal(
        predicted.drop(columns=["prediction"]), expected.drop(columns=["prediction"]),
        check_dtype=False, atol=1e-6,
    )  # fmt: skip


def test_a_tampered_champion_is_refused_and_no_server_starts(store: Champion) -> None:
    champion = store
    weights = stored_model_file(champion.run_id, "weights.safetensors")
    original = weights.read_bytes()
    port = free_port()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with serving(champion, port) as proc:
            _, err = proc.communicate(timeout=START_TIMEOUT_S)
    finally:
        weights.write_bytes(original)
    assert proc.returncode == 1
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"serve failed: --model {champion.uri} failed its integrity check")
    )
    assert "weights.safetensors" in err
    with socket.socket() as s:  # nothing listens on the port
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model", "runs:/x/model"], "--model: expected models:/NAME@ALIAS"),
        (["--model", "models:/m@champion", "--port", "0"], "--port: expected a port"),
        (["--model", "models:/m@champion", "--workers", "0"], "--workers: expected a whole"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("serve failed: python -m scorer.serve: ") and needle in err, err
