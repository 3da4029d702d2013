"""Real servers started on this machine for the tests and the benchmarks: ``mlflow server``
(sqlite and a local artifact folder) and MLflow's scoring server (``mlflow models serve
--env-manager local``), each on 127.0.0.1 and a free port, in its own process group, stopped
on exit; their output goes to a log file in their folder."""

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

# The first start of an mlflow server runs the database migrations; a scoring server loads the
# model (torch included) before it answers.
MLFLOW_STARTUP_TIMEOUT_S = 60.0
SCORING_STARTUP_TIMEOUT_S = 120.0
# Bounded client retries: a client of a server that is down fails in seconds.
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
        """Point a test's steps and clients at the server."""
        monkeypatch.setenv("MLFLOW_TRACKING_URI", self.uri)
        for name, value in FAST_FAILING_CLIENT.items():
            monkeypatch.setenv(name, value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ok(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float, what: str
) -> None:
    """Until ``url`` answers 200; RuntimeError with the end of ``log`` when the server exits
    first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{what} not ready after {timeout_s} s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (uvicorn and its workers), then SIGKILL:
    uvicorn waits for idle keep-alive connections of its clients before it exits."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@contextlib.contextmanager
def started(
    command: list[str], folder: Path, log_name: str, env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``command`` run in ``folder`` in a process group of its own, its output in
    ``folder / log_name``; stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / log_name
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process, log
    finally:
        stop(process)


def environment_command(name: str) -> str:
    """A console script installed beside this interpreter (``mlflow``)."""
    return str(Path(sys.executable).with_name(name))


@contextlib.contextmanager
def running_mlflow_server(root: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` (from this interpreter's environment) under ``root``."""
    port = free_port()
    command = [
        environment_command("mlflow"), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    # Its job runner (10 polling huey consumers) would keep two cores busy while idle.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    uri = f"http://127.0.0.1:{port}"
    with started(command, root, "server.log", env) as (process, log):
        wait_until_ok(f"{uri}/health", process, log, MLFLOW_STARTUP_TIMEOUT_S, "mlflow server")
        yield MlflowServer(uri, root)


@contextlib.contextmanager
def scoring_server(model: str | Path, workdir: Path, allow_pickle: bool = False) -> Iterator[str]:
    """``mlflow models serve -m model --env-manager local``, run from ``workdir`` (its log goes
    there too, and any file MLflow writes stays there); yields the server's URL once ``/ping``
    answers (the model is loaded). ``allow_pickle``: for a model MLflow deserialises
    (sklearn's, even in skops format), not for ours."""
    port = free_port()
    command = [
        environment_command("mlflow"), "models", "serve", "-m", str(model),
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1",
    ]  # fmt: skip
    bin_dir = str(Path(sys.executable).parent)  # MLflow starts ``uvicorn`` found on PATH
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": str(allow_pickle).lower(),
    }
    url = f"http://127.0.0.1:{port}"
    with started(command, workdir, "scoring-server.log", env) as (process, log):
        wait_until_ok(f"{url}/ping", process, log, SCORING_STARTUP_TIMEOUT_S, "scoring server")
        yield url
