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
from dataclasses import dataclass
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
    p = argparse.ArgumentParser(
        prog="python -m demo",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--source",
        metavar="FILE_OR_URI",
        help="your data instead of the sample: a parquet file or folder, or a CSV (local path, "
        "file:// or s3://); needs --target",
    )
    p.add_argument("--target", metavar="COLUMN", help="the label column of --source")
    p.add_argument(
        "--home",
        help="local root: data, runs, MLflow, Airflow DB (default: .demo for the sample, "
        ".demo/sources/<file name> for --source, so each dataset keeps its own schema and "
        "champion)",
    )
    p.add_argument("--rows", type=int, default=60_000, help="sample dataset size")
    p.add_argument("--epochs", type=int, default=8, help="epochs per sweep trial")
    p.add_argument("--model-name", default="demo-classifier", help="registered model")
    p.add_argument(
        "--min-accuracy",
        type=float,
        help="test accuracy to deploy (default: 0.7 on the sample; the DAG's own default, "
        "no floor, on --source)",
    )
    p.add_argument(
        "--conf", default="{}", help="JSON of DAG params that override the demo's (run conf)"
    )
    return p


@dataclass(frozen=True)
class Dataset:
    """What the DAG run trains on: the source as the config names it and its label column."""

    source: str
    target: str


def usage_error(message: str) -> int:
    print(f"python -m demo: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        return usage_error(f"--conf: not valid JSON ({exc})")
    if (args.source is None) != (args.target is None):
        return usage_error("--source and --target go together")
    logical_date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if args.source is None:
        home = Path(args.home or ".demo").resolve()
        data = write_sample(home, logical_date, args.rows)
        floor = {"min_accuracy": 0.7 if args.min_accuracy is None else args.min_accuracy}
    else:
        try:
            data = Dataset(own_source(args.source), args.target)
        except ValueError as exc:
            return usage_error(str(exc))
        home = Path(args.home or Path(".demo", "sources", source_name(data.source))).resolve()
        floor = {} if args.min_accuracy is None else {"min_accuracy": args.min_accuracy}
        print(f"your dataset: {data.source} (target {data.target}); everything under {home}")
    config = write_local_config(home, data, args.model_name)
    configure_airflow(home, config)
    conf = {"search_space": {**DEMO_SEARCH_SPACE, "epochs": [args.epochs]}, **floor, **overrides}
    return run_dag(logical_date, conf)


def write_sample(home: Path, logical_date: dt.datetime, rows: int) -> Dataset:
    """The sample dataset for today's run, at a dated path the config templates with ``ds``."""
    source = home / "data" / "{{ ds }}" / "sample.parquet"
    rendered = Path(str(source).replace("{{ ds }}", logical_date.date().isoformat()))
    rendered.parent.mkdir(parents=True, exist_ok=True)
    generate(rows).to_parquet(rendered, index=False)
    print(f"sample dataset: {rows} rows -> {rendered}")
    return Dataset(str(source), TARGET)


def own_source(source: str) -> str:
    """``source`` as the DAG's data source: an absolute path for a local file or folder (which
    must exist), a URI with a scheme as it is. No ``{{ ds }}`` is added: every run reads it."""
    if "://" in source and not source.startswith("file://"):
        return source
    path = Path(source.removeprefix("file://")).expanduser().resolve()
    if not path.exists():
        raise ValueError(f"--source {source}: no such file or folder")
    return str(path)


def source_name(source: str) -> str:
    """A folder name for the source's own demo home (its file or folder name, no suffix)."""
    name = source.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "data"


def write_local_config(home: Path, data: Dataset, model_name: str) -> Path:
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
        source=data.source,
        target=data.target,
        root=str(home / "runs"),
        volume_claim=None,
        poke_interval_seconds=5,
        wait_timeout_seconds=60,
    )
    path = home / "tabular_training.yaml"
    home.mkdir(parents=True, exist_ok=True)
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
