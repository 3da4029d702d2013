"""The DAG's S3 sensor for real: deferred, its trigger run by Airflow (``dag.test()`` runs
triggers in line) against moto's S3 server on loopback. Only ``wait_for_data`` runs (a subset of
the DAG holding just that task). The sensor's timeout while deferred is enforced by the
triggerer, which ``dag.test()`` does not emulate, so waiting in vain is not tested here."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from .conftest import DAGS_FOLDER

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "ml-datasets"
LOGICAL_DATE = dt.datetime(2026, 3, 4, tzinfo=dt.timezone.utc)
KEY = f"daily/{LOGICAL_DATE.date().isoformat()}/features.parquet"

# Runs one DAG run in a fresh process (Airflow reads its settings at import time) and prints the
# state of wait_for_data.
DEFERRED = "running trigger in line"  # what dag.test() logs when a task has deferred
RUN_SENSOR = """
import datetime as dt, json, sys
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.utils import db

db.initdb()
dags = Path(sys.argv[1])
bag = BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name="dags-folder")
assert not bag.import_errors, bag.import_errors
dag = bag.dags["tabular_training"].partial_subset(
    task_ids=["wait_for_data"], include_downstream=False, include_upstream=False
)
run = dag.test(logical_date=dt.datetime.fromisoformat(sys.argv[2]))
states = {ti.task_id: ti.state for ti in run.get_task_instances()}
print("STATES " + json.dumps(states))
"""


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> object:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
    if BUCKET not in existing:
        client.create_bucket(Bucket=BUCKET)
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    return client


def run_sensor(
    tmp_path: Path, config: Path, endpoint: str, on_defer: Callable[[], None] | None = None
) -> tuple[dict[str, str], str]:
    """Runs the sensor's DAG run; ``on_defer`` is called once the task has deferred."""
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TABULAR"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path}/airflow.db",
        AIRFLOW_CONN_AWS_DEFAULT=json.dumps(connection),
        TABULAR_TRAINING_CONFIG=str(config),
    )
    command = [sys.executable, "-c", RUN_SENSOR, str(DAGS_FOLDER), LOGICAL_DATE.isoformat()]
    lines = []
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if on_defer is not None and DEFERRED in line:
                on_defer()
                on_defer = None
    output = "".join(lines)
    states = next((x for x in lines if x.startswith("STATES ")), None)
    assert states is not None, output[-4000:]
    return json.loads(states.removeprefix("STATES ")), output


def sensor_config(write_config: Callable[..., Path], timeout_seconds: int) -> Path:
    return write_config(
        {
            "data": {
                "source": f"s3://{BUCKET}/daily/{{{{ ds }}}}/features.parquet",
                "poke_interval_seconds": 1,
                "wait_timeout_seconds": timeout_seconds,
            }
        }
    )


def test_sensor_succeeds_at_once_when_the_day_s_data_is_there(
    tmp_path: Path, s3: object, s3_server: str, write_config: Callable[..., Path]
) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"parquet bytes")  # type: ignore[attr-defined]
    states, output = run_sensor(tmp_path, sensor_config(write_config, 60), s3_server)
    assert states == {"wait_for_data": "success"}, output[-4000:]
    assert DEFERRED not in output  # a deferrable sensor checks once before it defers


def test_sensor_defers_until_the_data_arrives(
    tmp_path: Path, s3: object, s3_server: str, write_config: Callable[..., Path]
) -> None:
    def upload() -> None:
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"parquet bytes")  # type: ignore[attr-defined]

    states, output = run_sensor(tmp_path, sensor_config(write_config, 120), s3_server, upload)
    assert DEFERRED in output
    assert states == {"wait_for_data": "success"}, output[-4000:]
