"""The stack's process supervisor with real processes: a service that dies or never becomes
healthy fails with its log, and stopping ends the whole tree, even a grandchild that left the
service's session (as a pod of the local launcher does). Also the stack's usage errors."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tools import stack
from tools.supervisor import Service, ServiceError, Supervisor


def service(
    name: str,
    script: str,
    healthy: Callable[[], bool] | None = None,
    startup_timeout_s: float = 60,
) -> Service:
    """A Python one-liner as a service."""
    command = [sys.executable, "-c", script]
    return Service(name, command, dict(os.environ), healthy, startup_timeout_s)


def test_a_service_that_exits_fails_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    script = "import sys; print('bad port', flush=True); sys.exit(3)"
    with pytest.raises(ServiceError, match=r"(?s)db exited with code 3: .*bad port"):
        supervisor.start(service("db", script, healthy=lambda: False))
    supervisor.stop_all()
    assert (tmp_path / "db.log").read_text() == "bad port\n"


def test_a_service_never_healthy_times_out(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    try:
        with pytest.raises(ServiceError, match="slow not healthy after 1 s"):
            supervisor.start(service("slow", "import time; time.sleep(60)", lambda: False, 1))
    finally:
        supervisor.stop_all()
    assert supervisor.running == []


def test_stop_ends_children_outside_the_process_group(tmp_path: Path) -> None:
    # The service starts a child in a session of its own, then waits.
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
        " start_new_session=True)\n"
        "time.sleep(120)\n"
    )
    supervisor = Supervisor(tmp_path)
    process = supervisor.start(service("parent", script))

    def children() -> list[psutil.Process]:
        return psutil.Process(process.pid).children(recursive=True)

    deadline = time.monotonic() + 30
    while not children() and time.monotonic() < deadline:
        time.sleep(0.1)
    [child] = children()
    assert os.getpgid(child.pid) != os.getpgid(process.pid)
    assert supervisor.exited() is None
    supervisor.stop_all()
    assert process.poll() is not None
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--airflow-port", "0"], "--airflow-port: must be 1..65535, got 0"),
        (["--mlflow-port", "8080"], "the ports must differ"),
        (["--rows", "5"], "--rows: at least 100, got 5"),
        (["--admin-user", "a:b"], "no ':' in the user name"),
    ],
)
def test_usage_errors_exit_2_before_anything_starts(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert stack.main(["--home", str(home), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not home.exists()


def test_a_port_in_use_fails_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = [str(p) for p in free_ports(3)]
        argv = ["--home", str(tmp_path / "home"), "--mlflow-port", str(port)]
        argv += ["--airflow-port", free[0], "--s3-port", free[1], "--pg-port", free[2]]
        assert stack.main(argv) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port} is in use: choose another with --mlflow-port" in err
    assert not (tmp_path / "home" / "postgres").exists()
    assert signal.getsignal(signal.SIGINT) is not stack._on_signal  # handlers given back


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [int(sock.getsockname()[1]) for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports
