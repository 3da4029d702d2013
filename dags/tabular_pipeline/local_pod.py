"""Run a rendered pod's main container as a process on this machine (``launcher: local``).

Same command, arguments and environment as the pod; ``/airflow/xcom`` becomes a folder of the
try's work folder, and return.json is read with the XCom sidecar's semantics: missing or empty
means no result (None), anything else must be valid JSON or the task fails. Secrets are read from
``$TABULAR_TRAINING_SECRETS_DIR/<secret>/<key>`` (the layout of a mounted Secret) when a pod asks
for one. A PVC cannot be mounted here: local runs keep their data under a local ``data.root``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from airflow.exceptions import AirflowException
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

SECRETS_DIR_ENV = "TABULAR_TRAINING_SECRETS_DIR"
BASE_CONTAINER = "base"
# Volumes that mean nothing for a local process: the XCom folder is mapped, shm is the host's.
LOCAL_VOLUMES = ("xcom", "dshm")


def pod_workdir(local_root: str, context: Any) -> Path:
    """``<local_root>/<dag_id>/<run_id>/pods/<task_id>[.<map_index>]/try-<n>``."""
    ti = context["ti"]
    task = ti.task_id + (
        f".{ti.map_index}" if ti.map_index is not None and ti.map_index >= 0 else ""
    )
    return Path(local_root) / ti.dag_id / ti.run_id / "pods" / task / f"try-{ti.try_number}"


class Log(Protocol):
    def info(self, msg: Any, /, *args: Any) -> Any: ...


class LocalPod:
    """One try of one pod, as a local process. ``run()`` returns the XCom value (or None)."""

    def __init__(self, pod: k8s.V1Pod, workdir: Path, log: Log) -> None:
        self.pod = pod
        self.workdir = workdir
        self.log = log
        self.container = _base_container(pod)
        self.process: subprocess.Popen[str] | None = None

    @property
    def return_path(self) -> Path:
        return self.workdir / "xcom" / "return.json"

    @property
    def termination_log(self) -> Path:
        return self.workdir / "termination-log"

    def run(self) -> Any:
        _refuse_unmountable_volumes(self.pod)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.return_path.unlink(missing_ok=True)
        self.termination_log.unlink(missing_ok=True)
        self.return_path.parent.mkdir(exist_ok=True)
        spec = ApiClient().sanitize_for_serialization(self.pod)
        (self.workdir / "pod.json").write_text(json.dumps(spec, indent=2, sort_keys=True))
        code = self._run_process()
        if code != 0:
            reason = _read_text(self.termination_log) or f"exit code {code}"
            raise AirflowException(
                f"pod {self.pod.metadata.name} failed: {reason} (log: {self.workdir / 'log.txt'})"
            )
        return read_sidecar_result(self.return_path)

    def stop(self) -> None:
        """Stop the process as the kubelet would: SIGTERM, the grace period, then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        grace = self.pod.spec.termination_grace_period_seconds
        deadline = time.monotonic() + (30 if grace is None else grace)
        with contextlib.suppress(ProcessLookupError):  # it may end on its own meanwhile
            os.killpg(self.process.pid, signal.SIGTERM)
            while self.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def _run_process(self) -> int:
        command = _local_command([*(self.container.command or []), *(self.container.args or [])])
        env = _local_environment(self.container)
        env["XCOM_RETURN_PATH"] = str(self.return_path)
        env["TERMINATION_LOG_PATH"] = str(self.termination_log)
        self.log.info("Running pod %s locally: %s", self.pod.metadata.name, " ".join(command))
        # Line-buffered: the file shows each line as the pod writes it, as `kubectl logs` does.
        with (self.workdir / "log.txt").open("w", buffering=1) as log_file:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                assert self.process.stdout is not None
                for line in self.process.stdout:
                    log_file.write(line)
                    self.log.info("[%s] %s", BASE_CONTAINER, line.rstrip("\n"))
                return self.process.wait()
            finally:
                self.stop()


def read_sidecar_result(path: Path) -> Any:
    """What the XCom sidecar would push: None when return.json is missing or empty, else its
    JSON; whitespace or invalid JSON is an error, as it is for the provider."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AirflowException(f"{path} is not valid JSON ({exc}); nothing pushed") from exc


def _base_container(pod: k8s.V1Pod) -> k8s.V1Container:
    for container in pod.spec.containers:
        if container.name == BASE_CONTAINER:
            return container
    raise AirflowException(f"pod {pod.metadata.name} has no {BASE_CONTAINER!r} container")


def _refuse_unmountable_volumes(pod: k8s.V1Pod) -> None:
    for volume in pod.spec.volumes or []:
        if volume.name not in LOCAL_VOLUMES:
            raise AirflowException(
                f"the local launcher cannot mount volume {volume.name!r} of pod "
                f"{pod.metadata.name}; use a local data.root without data.volume_claim"
            )


def _local_command(command: list[str]) -> list[str]:
    """The image's ``python`` is this environment's interpreter, where the steps are installed."""
    if command and command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    return command


def _local_environment(container: k8s.V1Container) -> dict[str, str]:
    """This machine's environment (standing in for the image's) without Airflow's own settings,
    plus the container's env, secrets resolved from the local secrets folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    for var in container.env or []:
        if var.value_from is None:
            env[var.name] = var.value or ""
        else:
            env[var.name] = _secret_value(var)
    return env


def _secret_value(var: k8s.V1EnvVar) -> str:
    ref = var.value_from.secret_key_ref
    if ref is None:
        raise AirflowException(f"env {var.name}: only secretKeyRef values can be resolved locally")
    folder = os.environ.get(SECRETS_DIR_ENV)
    path = Path(folder or ".") / ref.name / ref.key
    if not folder or not path.is_file():
        raise AirflowException(
            f"env {var.name} needs key {ref.key!r} of Secret {ref.name!r}: put it in "
            f"${SECRETS_DIR_ENV}/{ref.name}/{ref.key} to run this pod locally"
        )
    return path.read_text().strip()


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
