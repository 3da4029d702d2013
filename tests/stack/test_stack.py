"""``python -m tools.stack`` end to end, seen only from outside as a team's client sees it:
Airflow's REST API (``/api/v2``, with a token of the auth manager), the MLflow server and S3.

The stack starts once (PostgreSQL, moto S3, mlflow server, Airflow's api-server, scheduler,
dag-processor and triggerer) in a fresh home on free ports, with the DAG paused so that nothing
runs before the test says so. A run is triggered for a day whose data is not there yet; the
data is uploaded only once the S3 sensor has deferred, so the triggerer has to resume it. The
run must then train its (tiny) sweep with its trials side by side, deploy the first model, and the
MLflow server must show it as the champion. Then: a second run compared with that champion; a
trainer stopped by SIGTERM mid-training whose retry resumes from its checkpoint; a run whose data
never comes, failing at the sensor's timeout. Finally SIGTERM to the stack must end every process
it started. The tests run in this order and share the stack.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
import requests

from demo.sample_data import generate
from tools.stack import ARTIFACT_BUCKET, DAG_ID, READY_LINE, S3_KEY_ID, S3_SECRET

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MODEL_NAME = "tabular-classifier"  # the cluster config's model_name
START_TIMEOUT_S = 420
RUN_TIMEOUT_S = 480
DATA_WAIT_TIMEOUT_S = 60  # the stack's sensor timeout: the data of a run must come by then
HTTP_TIMEOUT_S = 60  # the api-server answers slowly while the run's pods use every core
# Two tiny trials: the sweep is mapped over them and they run at the same time.
SEARCH_SPACE = {
    "lr": [0.001, 0.003],
    "optimizer": ["adamw"],
    "width": [64],
    "depth": [2],
    "batch_size": [512],
    "epochs": [2],
}
CONF = {"search_space": SEARCH_SPACE, "min_accuracy": 0.6}
TRAIN_TASK = "hyperparameter_tuning.train"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Stack:
    """The running stack process and the addresses it serves."""

    process: subprocess.Popen[str]
    home: Path
    airflow: str
    mlflow: str
    s3: str
    output: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def token(self) -> str:
        """A token of the auth manager (``POST /auth/token``), fetched once."""
        if not self.tokens:
            response = requests.post(
                f"{self.airflow}/auth/token",
                json={"username": "admin", "password": "admin"},
                timeout=HTTP_TIMEOUT_S,
            )
            assert response.status_code == 201, response.text
            self.tokens.append(str(response.json()["access_token"]))
        return self.tokens[0]

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to Airflow's REST API; an error status fails with the response's body."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        response = requests.request(
            method,
            f"{self.airflow}/api/v2{path}",
            headers=headers,
            timeout=HTTP_TIMEOUT_S,
            **kwargs,
        )
        assert response.ok, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def s3_client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3,
            region_name="us-east-1",
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
        )

    def log(self, name: str) -> str:
        path = self.home / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def stop(self) -> tuple[int, list[psutil.Process]]:
        """SIGTERM, as Ctrl-C's twin; the exit code and the processes it left alive."""
        try:
            started = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            started = []
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=180)
        _, alive = psutil.wait_procs(started, timeout=HTTP_TIMEOUT_S)
        return code, alive


def read_lines(stack: Stack, lines: queue.Queue[str | None]) -> None:
    """Every line the stack prints, into ``stack.output`` and ``lines`` (None: it exited)."""
    assert stack.process.stdout is not None
    for line in stack.process.stdout:
        stack.output.append(line.rstrip("\n"))
        lines.put(line.rstrip("\n"))
    lines.put(None)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # PostgreSQL runs as its own user when the tests run as root: its folder must be reachable.
    home = Path(tempfile.mkdtemp(prefix="stack-test-"))
    home.chmod(0o755)
    airflow, mlflow, s3, pg = free_ports(4)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "AWS_", "MLFLOW_", "TABULAR_", "XCOM_", "PIPELINE_"))
    }
    process = subprocess.Popen(
        [
            sys.executable, "-m", "tools.stack", "--home", str(home / "stack"),
            "--airflow-port", str(airflow), "--mlflow-port", str(mlflow),
            "--s3-port", str(s3), "--pg-port", str(pg), "--rows", "3000", "--paused",
            "--data-wait-timeout", str(DATA_WAIT_TIMEOUT_S),
        ],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    running = Stack(
        process,
        home / "stack",
        f"http://127.0.0.1:{airflow}",
        f"http://127.0.0.1:{mlflow}",
        f"http://127.0.0.1:{s3}",
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=read_lines, args=(running, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            assert line is not None, "the stack exited:\n" + "\n".join(running.output)
            if line.startswith(READY_LINE):
                break
        yield running
    finally:
        if process.poll() is None:
            with contextlib.suppress(Exception):
                running.stop()
        shutil.rmtree(home, ignore_errors=True)


def wait_for(what: str, check: Any, timeout_s: float, stack: Stack) -> Any:
    """Poll ``check()`` until it returns something truthy; fail with the scheduler's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert stack.process.poll() is None, "the stack exited:\n" + "\n".join(stack.output)
        time.sleep(2)
    pytest.fail(f"{what}: not after {timeout_s} s\n{stack.log('airflow-scheduler')}")


def task_state(stack: Stack, run_id: str, task_id: str) -> str | None:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}"
    return stack.api("GET", path).get("state")  # type: ignore[no-any-return]


def xcom(stack: Stack, run_id: str, task_id: str) -> Any:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    value = stack.api("GET", path)["value"]
    return json.loads(value) if isinstance(value, str) else value


def trial_times(stack: Stack, run_id: str) -> str:
    """Every try of every trial: when it was queued, started and ended, and how."""
    fields = ("map_index", "try_number", "state", "queued_when", "start_date", "end_date")
    lines = []
    for map_index in (0, 1):
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TRAIN_TASK}/{map_index}/tries"
        for attempt in stack.api("GET", path)["task_instances"]:
            lines.append(" ".join(f"{k}={attempt.get(k)}" for k in fields))
    scheduler = stack.home / "logs" / "airflow-scheduler.log"
    if scheduler.exists():  # what the scheduler said about the trials
        said = scheduler.read_text(errors="replace").splitlines()
        lines += [line for line in said if TRAIN_TASK in line][-40:]
    return "\n".join(lines)


def put_raw_data(stack: Stack, day: str) -> None:
    body = io.BytesIO()
    generate(3000, seed=11).to_parquet(body, index=False)
    key = f"daily/{day}/features.parquet"  # the config's data.source for that day
    stack.s3_client().put_object(Bucket="ml-datasets", Key=key, Body=body.getvalue())


def fail_scheduled_runs(stack: Stack) -> None:
    """Unpausing makes the scheduler create today's scheduled run (default sweep); it is not
    what this test checks, so it is marked failed as an operator would, before it can start."""
    stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

    def scheduled() -> list[dict[str, Any]]:
        runs = stack.api("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
        return [r for r in runs if r["run_type"] == "scheduled"]

    for run in wait_for("today's scheduled run", scheduled, 120, stack):
        path = f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"
        stack.api("PATCH", path, json={"state": "failed"})


def test_stack_prints_every_service(stack: Stack) -> None:
    printed = "\n".join(stack.output)
    for name in ("postgres", "s3", "mlflow", "airflow", "scheduler", "dag-processor"):
        assert f"{name:<10} ready" in printed, printed
    assert stack.airflow in printed and stack.mlflow in printed
    health = requests.get(f"{stack.airflow}/api/v2/monitor/health", timeout=HTTP_TIMEOUT_S).json()
    assert {health[c]["status"] for c in ("metadatabase", "scheduler", "triggerer")} == {"healthy"}
    assert requests.get(f"{stack.mlflow}/health", timeout=HTTP_TIMEOUT_S).ok
    # Today's sample is in the bucket; MLflow's artifacts bucket exists.
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    client = stack.s3_client()
    client.head_object(Bucket="ml-datasets", Key=f"daily/{today}/features.parquet")
    client.head_bucket(Bucket=ARTIFACT_BUCKET)


def test_triggered_run_waits_for_its_data_trains_and_deploys(stack: Stack) -> None:
    fail_scheduled_runs(stack)
    day = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).date()
    triggered = stack.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": f"{day.isoformat()}T00:00:00Z", "conf": CONF},
    )
    run_id = triggered["dag_run_id"]
    # The sensor finds nothing and hands the wait to the triggerer.
    wait_for(
        "wait_for_data deferred",
        lambda: task_state(stack, run_id, "wait_for_data") == "deferred",
        180,
        stack,
    )
    put_raw_data(stack, day.isoformat())

    state = wait_for("the run to finish", lambda: finished(stack, run_id), RUN_TIMEOUT_S, stack)
    instances = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    states = {
        f"{ti['task_id']}[{ti['map_index']}]": ti["state"] for ti in instances["task_instances"]
    }
    if state != "success":  # pytest.fail keeps the whole message; an assert's is cut short
        pytest.fail(f"run {run_id} {state}: {states}\n{failure_logs(stack, run_id)}")
    assert states["wait_for_data[-1]"] == "success"
    assert states["deploy[-1]"] == "success" and states["skip_deploy[-1]"] == "skipped"

    # Both trials of the mapped sweep ran, side by side: the scheduler queued the second before
    # the first had ended (their start times follow the executor's process start-up, which on a
    # loaded machine can come after a short trial has ended).
    trials = [ti for ti in instances["task_instances"] if ti["task_id"] == TRAIN_TASK]
    assert sorted(ti["map_index"] for ti in trials) == [0, 1]
    first, second = sorted(trials, key=lambda ti: ti["queued_when"])
    if not second["queued_when"] < first["end_date"]:
        pytest.fail(f"the trials ran one after the other:\n{trial_times(stack, run_id)}")
    # Each on its first try: a retry would hide a trial that fails beside another (as when both
    # logged the same datasets to the tracking store at once).
    if any(ti["try_number"] != 1 for ti in trials):
        pytest.fail(f"a trial was retried:\n{trial_times(stack, run_id)}")

    decision = xcom(stack, run_id, "evaluate")
    assert decision["should_deploy"] is True and decision["reason"] == "first_model"
    deployed = xcom(stack, run_id, "deploy")
    summary = xcom(stack, run_id, "notify")
    assert summary["deployed_version"] == deployed["version"]

    # The MLflow server names the deployed version as the champion, trained by the best run.
    alias = requests.get(
        f"{stack.mlflow}/api/2.0/mlflow/registered-models/alias",
        params={"name": MODEL_NAME, "alias": "champion"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert alias.ok, alias.text
    version = alias.json()["model_version"]
    assert int(version["version"]) == int(deployed["version"])
    assert version["run_id"] == decision["run_id"]
    # Its artifacts went through the MLflow server into the S3 bucket.
    listing = stack.s3_client().list_objects_v2(Bucket=ARTIFACT_BUCKET)
    assert listing.get("KeyCount", 0) > 0
    # The trials are runs of the model's one experiment, named for their trial, tagged with the
    # data date and this DAG run, their data logged as dataset inputs.
    ours = [r for r in runs_of(stack, MODEL_NAME) if tags_of(r).get("airflow.dag_run_id") == run_id]
    assert sorted(tags_of(r)["sweep.trial"] for r in ours) == ["0", "1"]
    for trial in ours:
        tags = tags_of(trial)
        assert tags["data_date"] == day.isoformat()
        assert trial["info"]["run_name"].startswith(f"trial-{tags['sweep.trial']}")
        contexts = {
            t["value"]
            for i in trial["inputs"]["dataset_inputs"]
            for t in i["tags"]
            if t["key"] == "mlflow.data.context"
        }
        assert contexts == {"source", "training", "validation"}


def test_second_run_compares_with_the_champion_and_keeps_it(stack: Stack) -> None:
    champion = champion_version(stack)
    day = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).date()
    put_raw_data(stack, day.isoformat())  # already there: the sensor succeeds on its first poke
    conf = {
        "search_space": {**SEARCH_SPACE, "lr": [0.003]},
        "min_accuracy": 0.99,  # no candidate reaches it
    }
    triggered = stack.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": f"{day.isoformat()}T00:00:00Z", "conf": conf},
    )
    run_id = triggered["dag_run_id"]
    state = wait_for("the run to finish", lambda: finished(stack, run_id), RUN_TIMEOUT_S, stack)
    if state != "success":
        pytest.fail(f"run {run_id} {state}:\n{failure_logs(stack, run_id)}")
    assert task_state(stack, run_id, "deploy") == "skipped"
    assert task_state(stack, run_id, "skip_deploy") == "success"
    decision = xcom(stack, run_id, "evaluate")
    assert decision["should_deploy"] is False and decision["reason"] == "below_floor"
    assert decision["champion_version"] == champion  # compared with the first run's model
    assert champion_version(stack) == champion


def test_a_trainer_stopped_mid_training_resumes_from_its_checkpoint(stack: Stack) -> None:
    """SIGTERM to the trainer pod's process, as the kubelet sends on preemption: it writes a
    checkpoint and fails; the retry continues from that checkpoint."""
    day = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).date()
    put_raw_data(stack, day.isoformat())
    space = {**SEARCH_SPACE, "lr": [0.003], "batch_size": [128], "epochs": [30], "patience": [30]}
    triggered = stack.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={
            "logical_date": f"{day.isoformat()}T00:00:00Z",
            "conf": {"search_space": space, "min_accuracy": 0.99},
        },
    )
    run_id = triggered["dag_run_id"]
    wait_for(
        "the trainer's second epoch in the task's log",
        lambda: "epoch 2/30" in task_log(stack, run_id, 1),
        RUN_TIMEOUT_S,
        stack,
    )
    [trainer] = [p for p in psutil.process_iter(["cmdline"]) if is_trainer_of(p, run_id)]
    trainer.send_signal(signal.SIGTERM)
    trainer.wait(timeout=120)
    state = wait_for("the run to finish", lambda: finished(stack, run_id), RUN_TIMEOUT_S, stack)
    if state != "success":
        pytest.fail(f"run {run_id} {state}:\n{failure_logs(stack, run_id)}")
    assert "training stopped on request" in task_log(stack, run_id, 1)
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TRAIN_TASK}/0"
    assert stack.api("GET", path)["try_number"] == 2
    xcom_path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TRAIN_TASK}/xcomEntries"
    result = stack.api("GET", f"{xcom_path}/return_value", params={"map_index": "0"})["value"]
    result = json.loads(result) if isinstance(result, str) else result
    assert result["resumed"] is True
    assert "resuming from" in task_log(stack, run_id, 2)


def task_log(
    stack: Stack, run_id: str, try_number: int, task_id: str = TRAIN_TASK, map_index: int = 0
) -> str:
    """The log of one try of a task (default: the first trainer), as the UI shows it (a pod's
    lines included); empty while there is none."""
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
    response = requests.get(
        f"{stack.airflow}/api/v2{path}",
        params={"map_index": str(map_index), "full_content": "true"},
        headers={"Authorization": f"Bearer {stack.token()}", "Accept": "application/json"},
        timeout=HTTP_TIMEOUT_S,
    )
    return response.text if response.ok else ""


def is_trainer_of(process: psutil.Process, run_id: str) -> bool:
    """Whether ``process`` is the trainer pod's process of the run ``run_id``."""
    cmdline = process.info["cmdline"] or []
    return cmdline[1:3] == ["-m", "trainer"] and any(run_id in arg for arg in cmdline)


def failure_logs(stack: Stack, run_id: str) -> str:
    """The end of the log of every failed task instance of a run, for a failure message."""
    instances = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    scheduler = (stack.home / "logs" / "airflow-scheduler.log").read_text(errors="replace")
    failed = [ti for ti in instances["task_instances"] if ti["state"] == "failed"]
    return "\n".join(
        f"--- {ti['task_id']}[{ti['map_index']}] try {ti['try_number']}:\n"
        + task_log(stack, run_id, ti["try_number"], ti["task_id"], ti["map_index"])[-3000:]
        + "\n--- the scheduler about it:\n"
        + "\n".join(
            line[:400]
            for line in scheduler.splitlines()
            if run_id in line and f"task_id={ti['task_id']}" in line
        )[-4000:]
        for ti in failed
    )


def runs_of(stack: Stack, experiment: str) -> list[dict[str, Any]]:
    """The runs of MLflow experiment ``experiment``, through the server's REST API."""
    found = requests.get(
        f"{stack.mlflow}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": experiment},
        timeout=HTTP_TIMEOUT_S,
    )
    assert found.ok, found.text
    searched = requests.post(
        f"{stack.mlflow}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [found.json()["experiment"]["experiment_id"]]},
        timeout=HTTP_TIMEOUT_S,
    )
    assert searched.ok, searched.text
    return searched.json().get("runs", [])  # type: ignore[no-any-return]


def tags_of(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def champion_version(stack: Stack) -> int:
    """The version behind ``@champion`` as the MLflow server says."""
    alias = requests.get(
        f"{stack.mlflow}/api/2.0/mlflow/registered-models/alias",
        params={"name": MODEL_NAME, "alias": "champion"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert alias.ok, alias.text
    return int(alias.json()["model_version"]["version"])


def finished(stack: Stack, run_id: str) -> str | None:
    """The run's final state, or None while it runs."""
    state = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
    return state if state in ("success", "failed") else None


def test_a_run_whose_data_never_arrives_fails_at_the_sensor_timeout(stack: Stack) -> None:
    day = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=5)).date()
    triggered = stack.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": f"{day.isoformat()}T00:00:00Z", "conf": CONF},
    )
    run_id = triggered["dag_run_id"]
    timeout = DATA_WAIT_TIMEOUT_S + RUN_TIMEOUT_S
    state = wait_for("the run to finish", lambda: finished(stack, run_id), timeout, stack)
    assert state == "failed"
    assert task_state(stack, run_id, "wait_for_data") == "failed"
    assert task_state(stack, run_id, "data_preparation.validate") == "upstream_failed"
    log = task_log(stack, run_id, 1, "wait_for_data", -1)
    assert f"daily/{day.isoformat()}/features.parquet" in log  # what it waited for
    assert re.search(r"TaskDeferralTimeout|Sensor has timed out|Trigger timeout", log), log[-3000:]


def test_sigterm_stops_every_process(stack: Stack) -> None:
    code, alive = stack.stop()
    assert code == 0, "\n".join(stack.output)
    assert alive == [], [p.pid for p in alive]
    time.sleep(1)  # the reader thread takes the last lines
    assert stack.output[-1] == "stack stopped", stack.output[-5:]
