"""A real ``mlflow server`` for tests: sqlite backend and a local artifact folder served by the
server itself (``--artifacts-destination``), on 127.0.0.1 and a free port. The first start runs
the database migrations, so the health check waits up to a minute."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 60.0
# Bounded client retries: a test that talks to a server that is down fails in seconds.
FAST_FAILING_CLIENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    root: Path  # holds mlflow.db, artifacts/ and server.log

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this test's steps and clients at the server."""
        monkeypatch.setenv("MLFLOW_TRACKING_URI", self.uri)
        for name, value in FAST_FAILING_CLIENT.items():
            monkeypatch.setenv(name, value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(uri: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited {process.returncode}: {log.read_text()[-2000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{uri}/health", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {STARTUP_TIMEOUT_S} s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (uvicorn and its worker), then SIGKILL:
    uvicorn waits for idle keep-alive connections of the test's clients before it exits."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@contextlib.contextmanager
def running_server(root: Path) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` (from this interpreter's environment) under ``root``; stop it on
    exit."""
    root.mkdir(parents=True, exist_ok=True)
    uri = f"http://127.0.0.1:{free_port()}"
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", "127.0.0.1", "--port", uri.rsplit(":", 1)[1], "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    log = root / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Its job runner (10 polling huey consumers) would keep two cores busy while idle.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
    try:
        wait_healthy(uri, process, log)
        yield MlflowServer(uri, root)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One server per test module that asks for it."""
    with running_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server
