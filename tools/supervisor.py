"""A small process supervisor: starts services in order, waits for each one's health check,
writes each one's output to ``<logs>/<name>.log`` and stops all of them, children included, in
reverse order.

Each service runs in a session of its own, so stopping it reaches every process of its group;
processes that left the group (a pod run by the local launcher starts its own session) are
found through the process tree, snapshotted before the stop, and ended too, so nothing is
left running after ``stop_all()``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HEALTH_POLL_S = 0.5
STOP_GRACE_S = 20.0


class ServiceError(RuntimeError):
    """A service exited or did not become healthy in time (the message quotes its log)."""


@dataclass(frozen=True)
class Service:
    """One long-running process: ``healthy()`` says when it serves (None: once it runs)."""

    name: str
    command: Sequence[str]
    env: dict[str, str]
    healthy: Callable[[], bool] | None = None
    startup_timeout_s: float = 120.0
    user: str | None = None  # run as this system user (PostgreSQL refuses to run as root)
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM  # PostgreSQL: SIGINT, its fast shutdown
    stop_grace_s: float = STOP_GRACE_S


@dataclass
class Supervisor:
    """The running services, in start order."""

    logs: Path
    running: list[tuple[Service, subprocess.Popen[bytes]]] = field(default_factory=list)

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, service: Service) -> subprocess.Popen[bytes]:
        """Start ``service`` and return once its health check passes."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.log_path(service.name).open("ab") as log:
            process = subprocess.Popen(
                list(service.command),
                env=service.env,
                cwd=service.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=service.user,
            )
        self.running.append((service, process))
        self.wait_healthy(service, process)
        return process

    def wait_healthy(self, service: Service, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + service.startup_timeout_s
        while True:
            if process.poll() is not None:
                raise ServiceError(
                    f"{service.name} exited with code {process.returncode}: "
                    f"{self.tail(service.name)}"
                )
            if service.healthy is None or service.healthy():
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{service.name} not healthy after {service.startup_timeout_s:.0f} s: "
                    f"{self.tail(service.name)}"
                )
            time.sleep(HEALTH_POLL_S)

    def tail(self, name: str, chars: int = 2000) -> str:
        """The end of a service's log, for an error message."""
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"(log {self.log_path(name)})\n{text[-chars:]}"

    def exited(self) -> tuple[Service, int] | None:
        """The first service whose process has ended, with its exit code."""
        for service, process in self.running:
            code = process.poll()
            if code is not None:
                return service, code
        return None

    def stop_all(self) -> None:
        """SIGTERM to each service's process group, newest first; SIGKILL after the grace
        period to anything of it still alive, descendants outside the group included."""
        while self.running:
            service, process = self.running.pop()
            stop_process_tree(process, service.stop_signal, service.stop_grace_s)


def stop_process_tree(process: subprocess.Popen[bytes], signum: int, grace_s: float) -> None:
    """End ``process``, its process group and every descendant it had when this was called."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_s)
    _, alive = psutil.wait_procs(descendants, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(alive, timeout=grace_s)
