"""``python -m demo``: the main job on the embedded default: the ``tabular_training`` DAG, end to
end, with real Airflow (``dag.test()`` on a sqlite metadata DB) and no cluster.

It writes the sample dataset for today's run, a config that is the cluster config with the
local launcher and local folders, then runs the DAG: every pod step is rendered by the
Kubernetes provider and run from that spec as a local process; MLflow is the embedded sqlite
store under ``--home``. Exits non-zero when the DAG run fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from demo.sample_data import TARGET, generate

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "dags"
DAG_ID = "tabular_training"
DEMO_SEARCH_SPACE = {
    "lr": [0.001, 0.003],
    "optimizer": ["adamw"],
    "width": [128, 256],
    "depth": [3],
    "batch_size": [1024],
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    p.add_argument("--home", default=".demo", help="local root: data, runs, MLflow, Airflow DB")
    p.add_argument("--rows", type=int, default=60_000, help="sample dataset size")
    p.add_argument("--epochs", type=int, default=8, help="epochs per sweep trial")
    p.add_argument("--model-name", default="demo-classifier", help="registered model")
    p.add_argument("--min-accuracy", type=float, default=0.7, help="test accuracy to deploy")
    p.add_argument(
        "--conf", default="{}", help="JSON of DAG params that override the demo's (run conf)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        print(f"--conf: not valid JSON ({exc})", file=sys.stderr)
        return 2
    home = Path(args.home).resolve()
    logical_date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    source = home / "data" / "{{ ds }}" / "sample.parquet"
    rendered = Path(str(source).replace("{{ ds }}", logical_date.date().isoformat()))
    rendered.parent.mkdir(parents=True, exist_ok=True)
    generate(args.rows).to_parquet(rendered, index=False)
    print(f"sample dataset: {args.rows} rows -> {rendered}")
    config = write_local_config(home, str(source), args.model_name)
    configure_airflow(home, config)
    conf = {
        "search_space": {**DEMO_SEARCH_SPACE, "epochs": [args.epochs]},
        "min_accuracy": args.min_accuracy,
        **overrides,
    }
    return run_dag(logical_date, conf)


def write_local_config(home: Path, source: str, model_name: str) -> Path:
    """The repository's cluster config with the local launcher, local folders and no Secrets
    (MLflow is the embedded store under ``home``)."""
    config = yaml.safe_load((DAGS_FOLDER / "tabular_training.yaml").read_text())
    config.update(
        launcher="local",
        model_name=model_name,
        env={"PIPELINE_HOME": str(home)},
        secrets=[],
        retries=1,
        retry_delay_seconds=1,
    )
    config["data"].update(
        source=source,
        target=TARGET,
        root=str(home / "runs"),
        volume_claim=None,
        poke_interval_seconds=5,
        wait_timeout_seconds=60,
    )
    path = home / "tabular_training.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def configure_airflow(home: Path, config: Path) -> None:
    """Airflow settings for an in-process run; they must be set before Airflow is imported."""
    if "airflow" in sys.modules:
        raise RuntimeError("configure_airflow must run before Airflow is imported")
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW_CONN_FS_DEFAULT": json.dumps({"conn_type": "fs"}),
            "TABULAR_TRAINING_CONFIG": str(config),
            "PIPELINE_HOME": str(home),
        }
    )


def run_dag(logical_date: dt.datetime, conf: dict[str, Any]) -> int:
    """Migrate the metadata DB, parse the DAG folder, run one DAG run, print its summary."""
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.utils import db

    db.initdb()
    bag = BundleDagBag(dag_folder=DAGS_FOLDER, bundle_path=DAGS_FOLDER, bundle_name="dags-folder")
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"{path}: {error}", file=sys.stderr)
        return 1
    dag_run = bag.dags[DAG_ID].test(logical_date=logical_date, run_conf=conf)
    print_outcome(dag_run)
    return 0 if dag_run.state == "success" else 1


def print_outcome(dag_run: Any) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    print(f"\nDAG run {dag_run.run_id}: {dag_run.state}")
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        index = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
        print(f"  {ti.task_id + index:<40} {ti.state}")
    query = XComModel.get_many(
        run_id=dag_run.run_id, dag_ids=DAG_ID, task_ids="notify", key="return_value"
    )
    with create_session() as session:
        row = session.scalars(query).first()
        summary = None if row is None else XComModel.deserialize_value(row)["summary"]
    if summary:
        print("\n" + summary)
    home = Path(os.environ["PIPELINE_HOME"])
    print(
        "\nOpen the MLflow UI with:\n"
        f"  .venv/bin/mlflow ui --backend-store-uri sqlite:///{home}/mlflow/mlflow.db "
        "--port 5000\n  then browse http://127.0.0.1:5000"
    )
