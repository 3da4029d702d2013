"""The local launcher: a rendered pod's ``base`` container runs as a real local process, with the
XCom sidecar's semantics for return.json, secrets from a local folder, the termination log as the
failure reason, and the kubelet's SIGTERM/grace period/SIGKILL on stop."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.exceptions import AirflowException
from kubernetes.client import models as k8s
from tabular_pipeline.local_pod import SECRETS_DIR_ENV, LocalPod, pod_workdir, read_sidecar_result

POD_NAME = "train-abc123"


class RecordingLog:
    """A logger that keeps every formatted message (thread-safe enough for list.append)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def info(self, msg: Any, /, *args: Any) -> None:
        self.messages.append(str(msg) % args if args else str(msg))

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in m for m in self.messages):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never logged; got {self.messages}")
            time.sleep(0.05)


def make_pod(
    code: str | None = None,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    env: list[k8s.V1EnvVar] | None = None,
    volumes: list[k8s.V1Volume] | None = None,
    grace: int | None = None,
    container_name: str = "base",
) -> k8s.V1Pod:
    """A pod whose ``base`` container runs ``python -c code`` (or ``command``)."""
    containers = [
        k8s.V1Container(
            name=container_name,
            image="registry.example.com/ml/tabular-gpu-pipeline:0.1.0",
            command=command if command is not None else ["python", "-c", code or "pass"],
            args=args,
            env=env,
        ),
        # A sidecar that must not run locally (the real one would wait forever).
        k8s.V1Container(
            name="airflow-xcom-sidecar", image="alpine", command=["sh", "-c", "exit 99"]
        ),
    ]
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=POD_NAME, namespace="ml-training"),
        spec=k8s.V1PodSpec(
            containers=containers, volumes=volumes, termination_grace_period_seconds=grace
        ),
    )


def secret_env(name: str, secret: str, key: str) -> k8s.V1EnvVar:
    return k8s.V1EnvVar(
        name=name,
        value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key)),
    )


WRITE_RESULT = """
import json, os
with open(os.environ["XCOM_RETURN_PATH"], "w") as f:
    json.dump({"accuracy": 0.9, "run_id": "abc", "nested": {"ok": True}}, f)
print("trained")
"""

WRITE_ENV = """
import json, os, sys
names = ["GREETING", "EMPTY", "TOKEN", "XCOM_RETURN_PATH", "TERMINATION_LOG_PATH",
         "KEEP_ME", "AIRFLOW__CORE__EXECUTOR", "AIRFLOW_CTX_DAG_ID"]
with open(os.environ["XCOM_RETURN_PATH"], "w") as f:
    json.dump({"env": {n: os.environ.get(n) for n in names}, "python": sys.executable,
               "argv": sys.argv[1:]}, f)
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "pods" / "train.0" / "try-1"


@pytest.fixture
def log() -> RecordingLog:
    return RecordingLog()


# --- the XCom sidecar's semantics ---------------------------------------------------------------


def test_sidecar_missing_file_is_no_result(tmp_path: Path) -> None:
    assert read_sidecar_result(tmp_path / "return.json") is None


def test_sidecar_empty_file_is_no_result(tmp_path: Path) -> None:
    path = tmp_path / "return.json"
    path.write_bytes(b"")
    assert read_sidecar_result(path) is None


@pytest.mark.parametrize("text", [" ", "\n", " \n\t\n"])
def test_sidecar_whitespace_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "return.json"
    path.write_text(text)
    with pytest.raises(AirflowException, match="is not valid JSON"):
        read_sidecar_result(path)


@pytest.mark.parametrize("text", ["{bad", "{'a': 1}", '{"a": 1} trailing', "NaN-ish"])
def test_sidecar_invalid_json_is_an_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "return.json"
    path.write_text(text)
    with pytest.raises(AirflowException) as info:
        read_sidecar_result(path)
    assert str(path) in str(info.value)
    assert "nothing pushed" in str(info.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1, "b": [true, null]}', {"a": 1, "b": [True, None]}),
        ("[1, 2.5]\n", [1, 2.5]),
        ('"text"', "text"),
        ("0", 0),
        ("null", None),
    ],
)
def test_sidecar_valid_json_is_parsed(tmp_path: Path, text: str, value: Any) -> None:
    path = tmp_path / "return.json"
    path.write_text(text)
    assert read_sidecar_result(path) == value


# --- running a pod ------------------------------------------------------------------------------


def test_run_returns_what_the_pod_wrote(workdir: Path, log: RecordingLog) -> None:
    pod = LocalPod(make_pod(WRITE_RESULT), workdir, log)
    assert pod.run() == {"accuracy": 0.9, "run_id": "abc", "nested": {"ok": True}}
    assert pod.return_path == workdir / "xcom" / "return.json"
    assert pod.process is not None and pod.process.returncode == 0


def test_run_writes_pod_json_and_log(workdir: Path, log: RecordingLog) -> None:
    code = "import sys\nprint('line one')\nprint('line two', file=sys.stderr)\nprint('line three')"
    LocalPod(make_pod(code, grace=45), workdir, log).run()

    spec = json.loads((workdir / "pod.json").read_text())
    assert spec["metadata"]["name"] == POD_NAME
    assert spec["spec"]["terminationGracePeriodSeconds"] == 45
    assert [c["name"] for c in spec["spec"]["containers"]] == ["base", "airflow-xcom-sidecar"]
    assert spec["spec"]["containers"][0]["command"] == ["python", "-c", code]

    lines = (workdir / "log.txt").read_text().splitlines()
    assert sorted(lines) == ["line one", "line three", "line two"]  # stderr goes to the log too
    assert "[base] line one" in log.messages
    assert "[base] line two" in log.messages
    assert "[base] line three" in log.messages
    assert log.messages[0] == f"Running pod {POD_NAME} locally: {sys.executable} -c {code}"


def test_a_pod_that_writes_nothing_returns_none(workdir: Path, log: RecordingLog) -> None:
    assert LocalPod(make_pod("print('no result')"), workdir, log).run() is None
    assert not (workdir / "xcom" / "return.json").exists()
    assert (workdir / "xcom").is_dir()


def test_an_empty_return_json_is_no_result(workdir: Path, log: RecordingLog) -> None:
    code = "import os\nopen(os.environ['XCOM_RETURN_PATH'], 'w').close()"
    assert LocalPod(make_pod(code), workdir, log).run() is None


def test_an_invalid_return_json_fails_the_run(workdir: Path, log: RecordingLog) -> None:
    code = "import os\nopen(os.environ['XCOM_RETURN_PATH'], 'w').write('{not json')"
    with pytest.raises(AirflowException, match="is not valid JSON"):
        LocalPod(make_pod(code), workdir, log).run()


def test_a_failed_pod_reports_its_termination_log(workdir: Path, log: RecordingLog) -> None:
    code = """
import os, sys
print("starting")
with open(os.environ["TERMINATION_LOG_PATH"], "w") as f:
    f.write("StepError: --dropout must be in [0, 1), got 1.5\\n")
sys.exit(3)
"""
    pod = LocalPod(make_pod(code), workdir, log)
    with pytest.raises(AirflowException) as info:
        pod.run()
    message = str(info.value)
    assert message == (
        f"pod {POD_NAME} failed: StepError: --dropout must be in [0, 1), got 1.5 "
        f"(log: {workdir / 'log.txt'})"
    )
    assert pod.process is not None and pod.process.returncode == 3
    assert (workdir / "log.txt").read_text() == "starting\n"


def test_a_failed_pod_without_termination_log_reports_its_exit_code(
    workdir: Path, log: RecordingLog
) -> None:
    code = "import os, sys\nopen(os.environ['XCOM_RETURN_PATH'], 'w').write('{}')\nsys.exit(7)"
    with pytest.raises(AirflowException, match=rf"^pod {POD_NAME} failed: exit code 7 \(log: "):
        LocalPod(make_pod(code), workdir, log).run()


def test_python_is_this_interpreter_and_args_follow_the_command(
    workdir: Path, log: RecordingLog
) -> None:
    for python in ("python", "python3"):
        pod = make_pod(command=[python, "-c", WRITE_ENV], args=["--lr", "0.01"])
        result = LocalPod(pod, workdir, log).run()
        assert result["python"] == sys.executable
        assert result["argv"] == ["--lr", "0.01"]


def test_other_commands_run_as_they_are(workdir: Path, log: RecordingLog) -> None:
    pod = make_pod(command=["sh", "-c", 'printf \'{"shell": "%s"}\' "$0" > "$XCOM_RETURN_PATH"'])
    assert LocalPod(pod, workdir, log).run() == {"shell": "sh"}


def test_only_the_base_container_runs(workdir: Path, log: RecordingLog) -> None:
    # The sidecar of make_pod exits 99; the run succeeding shows it never ran.
    assert LocalPod(make_pod("print('base ran')"), workdir, log).run() is None
    assert "[base] base ran" in log.messages


def test_a_pod_without_base_container_is_refused(workdir: Path, log: RecordingLog) -> None:
    with pytest.raises(AirflowException, match=rf"^pod {POD_NAME} has no 'base' container$"):
        LocalPod(make_pod("pass", container_name="main"), workdir, log)


# --- environment and secrets --------------------------------------------------------------------


def write_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str, key: str, value: str
) -> Path:
    """One key of a Secret in the local secrets folder (a mounted Secret's layout)."""
    folder = tmp_path / "secrets"
    (folder / secret).mkdir(parents=True, exist_ok=True)
    (folder / secret / key).write_text(value)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(folder))
    return folder


def test_environment_plain_values_secrets_and_paths(
    workdir: Path, log: RecordingLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secret(tmp_path, monkeypatch, "mlflow", "password", "s3cret\n")
    monkeypatch.setenv("KEEP_ME", "from-the-host")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "tabular_training")
    # The autouse isolated_env fixture set both paths for this process; the pod gets its own.
    assert os.environ["XCOM_RETURN_PATH"] != str(workdir / "xcom" / "return.json")

    env = [
        k8s.V1EnvVar(name="GREETING", value="hello"),
        k8s.V1EnvVar(name="EMPTY"),
        secret_env("TOKEN", "mlflow", "password"),
    ]
    result = LocalPod(make_pod(WRITE_ENV, env=env), workdir, log).run()
    assert result["env"] == {
        "GREETING": "hello",
        "EMPTY": "",
        "TOKEN": "s3cret",
        "XCOM_RETURN_PATH": str(workdir / "xcom" / "return.json"),
        "TERMINATION_LOG_PATH": str(workdir / "termination-log"),
        "KEEP_ME": "from-the-host",
        "AIRFLOW__CORE__EXECUTOR": None,
        "AIRFLOW_CTX_DAG_ID": None,
    }


def test_a_pod_cannot_override_the_result_paths(workdir: Path, log: RecordingLog) -> None:
    env = [k8s.V1EnvVar(name="XCOM_RETURN_PATH", value="/nonexistent/return.json")]
    result = LocalPod(make_pod(WRITE_ENV, env=env), workdir, log).run()
    assert result["env"]["XCOM_RETURN_PATH"] == str(workdir / "xcom" / "return.json")


def test_a_missing_secret_key_is_a_clear_error(
    workdir: Path, log: RecordingLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secret(tmp_path, monkeypatch, "aws-credentials", "access-key-id", "AKIA")
    marker = tmp_path / "ran"
    env = [
        secret_env("AWS_ACCESS_KEY_ID", "aws-credentials", "access-key-id"),
        secret_env("AWS_SECRET_ACCESS_KEY", "aws-credentials", "secret-access-key"),
    ]
    pod = make_pod(f"open({str(marker)!r}, 'w').close()", env=env)
    with pytest.raises(AirflowException) as info:
        LocalPod(pod, workdir, log).run()
    assert str(info.value) == (
        "env AWS_SECRET_ACCESS_KEY needs key 'secret-access-key' of Secret 'aws-credentials': "
        f"put it in ${SECRETS_DIR_ENV}/aws-credentials/secret-access-key to run this pod locally"
    )
    assert not marker.exists()


def test_a_secret_without_secrets_dir_is_a_clear_error(
    workdir: Path,
    log: RecordingLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SECRETS_DIR_ENV, raising=False)
    # Even a matching file under the current folder is not read without the variable.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow").mkdir()
    (tmp_path / "mlflow" / "password").write_text("found-by-accident")
    pod = make_pod(WRITE_ENV, env=[secret_env("TOKEN", "mlflow", "password")])
    with pytest.raises(
        AirflowException, match=r"^env TOKEN needs key 'password' of Secret 'mlflow'"
    ):
        LocalPod(pod, workdir, log).run()


def test_only_secret_refs_can_be_resolved(workdir: Path, log: RecordingLog) -> None:
    var = k8s.V1EnvVar(
        name="SETTINGS",
        value_from=k8s.V1EnvVarSource(
            config_map_key_ref=k8s.V1ConfigMapKeySelector(name="settings", key="a")
        ),
    )
    with pytest.raises(
        AirflowException, match=r"^env SETTINGS: only secretKeyRef values can be resolved locally$"
    ):
        LocalPod(make_pod("pass", env=[var]), workdir, log).run()


# --- volumes ------------------------------------------------------------------------------------


def test_a_pvc_volume_is_refused_before_anything_runs(
    workdir: Path, log: RecordingLog, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    volumes = [
        k8s.V1Volume(name="xcom", empty_dir=k8s.V1EmptyDirVolumeSource()),
        k8s.V1Volume(
            name="data",
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name="pipeline-data"
            ),
        ),
    ]
    pod = make_pod(f"open({str(marker)!r}, 'w').close()", volumes=volumes)
    with pytest.raises(AirflowException) as info:
        LocalPod(pod, workdir, log).run()
    assert str(info.value) == (
        f"the local launcher cannot mount volume 'data' of pod {POD_NAME}; "
        "use a local data.root without data.volume_claim"
    )
    assert not marker.exists()
    assert not workdir.exists()
    assert log.messages == []


def test_xcom_and_shm_volumes_are_fine(workdir: Path, log: RecordingLog) -> None:
    volumes = [
        k8s.V1Volume(name="xcom", empty_dir=k8s.V1EmptyDirVolumeSource()),
        k8s.V1Volume(
            name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit="16Gi")
        ),
    ]
    assert LocalPod(make_pod(WRITE_RESULT, volumes=volumes), workdir, log).run() is not None


# --- retries ------------------------------------------------------------------------------------


def test_a_stale_result_of_a_previous_run_is_removed(workdir: Path, log: RecordingLog) -> None:
    (workdir / "xcom").mkdir(parents=True)
    (workdir / "xcom" / "return.json").write_text('{"stale": true}')
    (workdir / "termination-log").write_text("old failure")
    assert LocalPod(make_pod("print('fresh')"), workdir, log).run() is None
    assert not (workdir / "xcom" / "return.json").exists()
    assert not (workdir / "termination-log").exists()


def test_a_stale_termination_log_is_not_the_failure_reason(
    workdir: Path, log: RecordingLog
) -> None:
    workdir.mkdir(parents=True)
    (workdir / "termination-log").write_text("old failure")
    with pytest.raises(AirflowException) as info:
        LocalPod(make_pod("raise SystemExit(2)"), workdir, log).run()
    assert "exit code 2" in str(info.value)
    assert "old failure" not in str(info.value)


# --- stop ---------------------------------------------------------------------------------------


class BackgroundRun:
    """``LocalPod.run()`` in a thread, keeping its outcome."""

    def __init__(self, pod: LocalPod) -> None:
        self.pod = pod
        self.error: BaseException | None = None
        self.result: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.pod.run()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run() did not return"


SLEEPER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("ready", child.pid, flush=True)
time.sleep(120)
"""

STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def _gone(pid: int) -> bool:
    """The process no longer runs (exited, or a zombie waiting for its reaper)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return any(line.split()[1] == "Z" for line in status.splitlines() if line.startswith("State:"))


@pytest.mark.timeout(60)
def test_stop_terminates_the_process_group_within_the_grace_period(
    workdir: Path, log: RecordingLog
) -> None:
    pod = LocalPod(make_pod(SLEEPER, grace=10), workdir, log)
    run = BackgroundRun(pod)
    log.wait_for("[base] ready")
    grandchild = int(next(m for m in log.messages if "[base] ready" in m).split()[-1])

    started = time.monotonic()
    pod.stop()
    elapsed = time.monotonic() - started
    run.join(timeout=10)

    assert elapsed < 5, elapsed  # SIGTERM was enough; no wait for the 10 s grace period
    assert pod.process is not None and pod.process.returncode == -signal.SIGTERM
    assert isinstance(run.error, AirflowException)
    assert f"exit code {-signal.SIGTERM}" in str(run.error)
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(grandchild), "the pod's child process survived stop()"


@pytest.mark.timeout(60)
def test_stop_kills_a_process_that_ignores_sigterm_after_the_grace_period(
    workdir: Path, log: RecordingLog
) -> None:
    pod = LocalPod(make_pod(STUBBORN, grace=1), workdir, log)
    run = BackgroundRun(pod)
    log.wait_for("[base] ready")

    started = time.monotonic()
    pod.stop()
    elapsed = time.monotonic() - started
    run.join(timeout=10)

    assert 1 <= elapsed < 5, elapsed
    assert pod.process is not None and pod.process.returncode == -signal.SIGKILL
    assert isinstance(run.error, AirflowException)
    log.wait_for("[base] ignoring SIGTERM", timeout=1)


def test_stop_before_and_after_a_run_does_nothing(workdir: Path, log: RecordingLog) -> None:
    pod = LocalPod(make_pod("print('quick')"), workdir, log)
    pod.stop()
    assert pod.process is None
    assert pod.run() is None
    pod.stop()
    assert pod.process is not None and pod.process.returncode == 0


# --- work folder --------------------------------------------------------------------------------


def _context(map_index: int | None, try_number: int = 1) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="tabular_training",
        run_id="manual__2024-01-02T00:00:00+00:00",
        task_id="hyperparameter_tuning.train",
        map_index=map_index,
        try_number=try_number,
    )
    return {"ti": ti}


@pytest.mark.parametrize(
    ("map_index", "task_folder"),
    [
        (None, "hyperparameter_tuning.train"),
        (-1, "hyperparameter_tuning.train"),
        (0, "hyperparameter_tuning.train.0"),
        (12, "hyperparameter_tuning.train.12"),
    ],
)
def test_pod_workdir(map_index: int | None, task_folder: str) -> None:
    path = pod_workdir("/srv/pipeline/runs", _context(map_index, try_number=3))
    assert (
        path
        == Path("/srv/pipeline/runs/tabular_training/manual__2024-01-02T00:00:00+00:00/pods")
        / task_folder
        / "try-3"
    )


def test_each_try_gets_its_own_workdir() -> None:
    first = pod_workdir("/runs", _context(2, try_number=1))
    second = pod_workdir("/runs", _context(2, try_number=2))
    assert first != second
    assert first.parent == second.parent
