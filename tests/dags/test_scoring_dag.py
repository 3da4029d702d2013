"""The ``tabular_scoring`` DAG: it parses with the cluster config, is scheduled on the champion's
asset (and a cron schedule when configured), renders a CPU-only scorer pod valid for Kubernetes,
and a real local run (``dag.test()``, the pod run as a process) scores a file with a champion.
The training DAG's deploy announces a new champion only when the alias moved."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import kubernetes_validate
import pandas as pd
import pytest
from kubernetes.client import ApiClient
from tabular_pipeline.config import load_config
from tabular_pipeline.pods import StepPodOperator
from tabular_pipeline.results import require_result
from tabular_pipeline.scoring import (
    announce_new_champion,
    champion_asset,
    new_champion_alias,
)

from .conftest import CLUSTER_CONFIG, DAGS_FOLDER
from .test_pods import FakeTaskInstance

SCORING_DAG_ID = "tabular_scoring"
RUN_ID = "asset_triggered__2026-03-04T05:06:07+00:00"
RUN_AFTER = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
KUBERNETES_VERSION = "1.33"

WriteConfig = Callable[..., Path]


def parse(monkeypatch: pytest.MonkeyPatch, config: Path = CLUSTER_CONFIG) -> Any:
    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.setenv("TABULAR_TRAINING_CONFIG", str(config))
    bag = BundleDagBag(
        dag_folder=str(DAGS_FOLDER), bundle_path=str(DAGS_FOLDER), bundle_name="dags-folder"
    )
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def render_score(dag: Any) -> tuple[StepPodOperator, dict[str, Any]]:
    """The score task rendered as in an asset-triggered run (no logical date, so no ``ds``)."""
    task = dag.get_task("score")
    ti = FakeTaskInstance(dag_id=dag.dag_id, task_id="score", map_index=-1, xcoms={})
    dag_run = SimpleNamespace(
        dag_id=dag.dag_id, run_id=RUN_ID, conf={}, logical_date=None, run_after=RUN_AFTER
    )
    context = {"dag": dag, "task": task, "ti": ti, "task_instance": ti, "dag_run": dag_run,
               "run_id": RUN_ID, "params": {}}  # fmt: skip
    task.render_template_fields(cast("Any", context))
    pod = task.build_pod_request_obj(context, dry_run=True)
    return task, ApiClient().sanitize_for_serialization(pod)


def test_the_dag_parses_and_is_scheduled_on_the_champion_asset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

    dags = parse(monkeypatch)
    assert {"tabular_training", SCORING_DAG_ID} <= set(dags)
    dag = dags[SCORING_DAG_ID]
    assert {t.task_id for t in dag.tasks} == {"score", "check_result"}
    assert dag.get_task("check_result").upstream_task_ids == {"score"}
    assert isinstance(dag.timetable, AssetTriggeredTimetable)
    config = load_config(CLUSTER_CONFIG)
    assert dag.timetable.asset_condition == champion_asset(config)
    deploy = dags["tabular_training"].get_task("deploy")
    assert deploy.outlets == [new_champion_alias(config)]


def test_a_cron_schedule_from_the_config_adds_to_the_asset(
    monkeypatch: pytest.MonkeyPatch, write_config: WriteConfig
) -> None:
    from airflow.sdk import AssetOrTimeSchedule

    dag = parse(monkeypatch, write_config({"scoring": {"schedule": "0 6 * * *"}}))[SCORING_DAG_ID]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.timetable.expression == "0 6 * * *"


def test_the_scorer_pod_runs_on_cpu_nodes_with_its_own_resources(
    monkeypatch: pytest.MonkeyPatch, write_config: WriteConfig
) -> None:
    overrides = {"scoring": {"keep_columns": ["customer_id"], "batch_rows": 4096}}
    config_path = write_config(overrides)
    config = load_config(config_path)
    operator, pod = render_score(parse(monkeypatch, config_path)[SCORING_DAG_ID])
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    assert base["command"] == ["python", "-m", "scorer"]
    assert base["args"] == [
        "--model", f"models:/{config.model_name}@champion",
        "--input", "s3://ml-datasets/daily/2026-03-04/to_score.parquet",
        "--output", "s3://ml-pipeline/scores/2026-03-04/predictions.parquet",
        "--batch-rows", "4096", "--keep-columns", "customer_id",
    ]  # fmt: skip
    assert base["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "4", "memory": "8Gi"},
    }
    assert not pod["spec"].get("affinity") and not pod["spec"].get("tolerations")
    assert not any("gpu" in name for part in base["resources"].values() for name in part)
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "score"
    assert operator.execution_timeout == dt.timedelta(minutes=60)
    assert operator.image == config.image


def test_the_config_section_is_strict(write_config: WriteConfig) -> None:
    from tabular_pipeline.config import ConfigError

    with pytest.raises(ConfigError, match=r"scoring\.batch_size: unknown key; did you mean"):
        load_config(write_config({"scoring": {"batch_size": 10}}))
    with pytest.raises(ConfigError, match=r"scoring\.batch_rows: must be >= 1"):
        load_config(write_config({"scoring": {"batch_rows": 0}}))


@pytest.mark.parametrize(
    ("result", "announced"),
    [
        ({"action": "deploy", "alias_moved": True, "version": 4, "previous_version": 3}, True),
        ({"action": "deploy", "alias_moved": False, "version": 4, "previous_version": 4}, False),
        ({"action": "rollback", "alias_moved": True, "version": 3, "previous_version": 4}, False),
        (None, False),
    ],
)
def test_the_deploy_announces_a_new_champion_only_when_the_alias_moved(
    result: dict[str, Any] | None, announced: bool
) -> None:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    config = load_config(CLUSTER_CONFIG)
    events = OutletEventAccessors()
    announce_new_champion(config)({"outlet_events": events}, result)
    emitted = events[new_champion_alias(config)].asset_alias_events
    if not announced:
        assert emitted == []
        return
    (event,) = emitted
    assert event.dest_asset_key.name == champion_asset(config).name
    assert event.extra["version"] == 4


# --- a real local run -----------------------------------------------------------------------

RUN_SCRIPT = textwrap.dedent(
    """
    import datetime as dt, sys
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.utils import db

    db.initdb()
    folder = sys.argv[1]
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    run = bag.dags["tabular_scoring"].test(logical_date=dt.datetime.fromisoformat(sys.argv[2]))
    for ti in run.get_task_instances():
        print("TASK", ti.task_id, ti.state)
    print("RUN", run.state)
    """
)


@pytest.mark.integration
@pytest.mark.slow
def test_a_local_run_scores_a_file_with_the_champion(
    tmp_path: Path, write_config: WriteConfig, sample_frame: pd.DataFrame
) -> None:
    from bench.batch_scoring import register
    from tests.trainer.workspace import build_workspace, log_untrained_model, workspace_env

    home = tmp_path / "home"
    with workspace_env(tmp_path):
        workspace = build_workspace(tmp_path, sample_frame)
        register(log_untrained_model(workspace.data), "scored-model")
    rows = workspace.raw_test()
    source = home / "data" / "2026-03-04" / "rows.parquet"
    source.parent.mkdir(parents=True)
    rows.to_parquet(source, index=False)
    config = write_config({
        "launcher": "local", "model_name": "scored-model", "secrets": [],
        "env": {"PIPELINE_HOME": str(home)}, "retries": 0,
        "data": {"root": str(home / "runs"), "volume_claim": None},
        "scoring": {"input": str(home / "data/{{ ds }}/rows.parquet"),
                    "output": str(home / "scores/{{ ds }}/predictions.csv")},
    })  # fmt: skip
    airflow_home = tmp_path / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_"))}
    env.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "TABULAR_TRAINING_CONFIG": str(config),
        "PIPELINE_HOME": str(home),
    })  # fmt: skip
    airflow_home.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", RUN_SCRIPT, str(DAGS_FOLDER), "2026-03-04T05:06:07+00:00"],
        cwd=DAGS_FOLDER.parent, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert "RUN success" in done.stdout, out[-4000:]
    assert "TASK score success" in done.stdout and "TASK check_result success" in done.stdout
    output = home / "scores" / "2026-03-04" / "predictions.csv"
    scored = pd.read_csv(output)
    assert len(scored) == len(rows)
    assert list(scored.columns) == ["prediction", "proba_no", "proba_yes"]
    manifest = json.loads(Path(f"{output}.manifest.json").read_text())
    assert (manifest["model_name"], manifest["model_version"]) == ("scored-model", 1)
    (pod_dir,) = (home / "runs" / SCORING_DAG_ID).glob("*/pods/score/try-1")
    result = require_result(
        "score", json.loads((pod_dir / "xcom/return.json").read_text()), "score"
    )
    assert result["output_uri"] == str(output)
