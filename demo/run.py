"""``python -m demo``: the main job on the embedded default: the ``tabular_training`` DAG, end to
end, with real Airflow (``dag.test()`` on a sqlite metadata DB) and no cluster.

It writes the sample dataset for today's run (``--task regression``: the regression sample,
whose numeric target validate and preprocess detect as regression), a config that is the
cluster config with the local launcher and local folders, then runs the DAG: every pod step is
rendered by the Kubernetes provider and run from that spec as a local process; MLflow is the
embedded sqlite store under ``--home``. Exits non-zero when the DAG run fails.

The screen shows each task's state as it changes, each sweep trial's validation metrics as it
finishes, and the run's summary; Airflow's and the steps' logs go to a log file under
``--home`` (its path is shown at the start and the end), or with ``--verbose`` to the screen.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common.step import StepHelpFormatter, plain_text
from demo.sample_data import TARGETS, generate_for
from demo.screen import Screen, output_to

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "dags"
DAG_ID = "tabular_training"
SCORING_DAG_ID = "tabular_scoring"
DEMO_SEARCH_SPACE = {
    "lr": [0.001, 0.003],
    "optimizer": ["adamw"],
    "width": [128, 256],
    "depth": [3],
    "batch_size": [1024],
}
TASKS = tuple(TARGETS)  # classification, regression
MODEL_NAMES = {"classification": "demo-classifier", "regression": "demo-regressor"}
SAMPLE_HOMES = {"classification": Path(".demo"), "regression": Path(".demo", "regression")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m demo", description=plain_text(__doc__), formatter_class=StepHelpFormatter
    )
    data = p.add_argument_group("data", "the sample, or a dataset of your own")
    data.add_argument(
        "--source",
        metavar="URI",
        help="your data instead of the sample: a parquet file or folder, or a CSV (local path, "
        "file:// or s3://); needs --target",
    )
    data.add_argument("--target", metavar="COLUMN", help="the label column of --source")
    data.add_argument(
        "--task",
        choices=TASKS,
        help="which sample: classification (credit default, the default) or regression "
        "(delivery minutes); --source needs none (its task is detected from --target's values)",
    )
    data.add_argument("--rows", type=int, default=60_000, metavar="N", help="sample dataset size")
    run = p.add_argument_group("run", "where the run lives and what it may change")
    run.add_argument(
        "--home",
        metavar="PATH",
        help="local root: data, runs, MLflow, Airflow DB (default: .demo for the sample, "
        ".demo/regression for the regression sample, .demo/sources/<file name> for --source, "
        "so each dataset keeps its own schema and champion)",
    )
    run.add_argument("--epochs", type=int, default=8, metavar="N", help="epochs per sweep trial")
    run.add_argument(
        "--model-name",
        metavar="NAME",
        help="registered model (default: demo-classifier, or demo-regressor for the regression "
        "sample)",
    )
    run.add_argument(
        "--min-accuracy",
        type=float,
        metavar="FLOAT",
        help="test accuracy to deploy (default: 0.7 on the classification sample; the DAG's "
        "own default, no floor, on --source; a classification gate, refused with --task "
        "regression)",
    )
    run.add_argument(
        "--conf",
        default="{}",
        metavar="JSON",
        help="JSON of DAG params that override the demo's (run conf)",
    )
    screen = p.add_argument_group("screen", "what is shown while the DAG runs")
    screen.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="Airflow's and the steps' full log on the screen instead of in the log file",
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


@dataclass(frozen=True)
class Plan:
    """A checked demo run: its home, its data (None: the sample of ``task``, written when the
    run starts) and its run conf."""

    home: Path
    data: Dataset | None
    conf: dict[str, Any]
    rows: int
    model_name: str
    task: str = "classification"  # the sample's (with --source: what the model name says)


def check_flags(args: argparse.Namespace) -> None:
    """A ValueError for flags that do not go together."""
    if (args.source is None) != (args.target is None):
        raise ValueError("--source and --target go together")
    if args.source is not None and args.task is not None:
        raise ValueError(
            "--task chooses the sample; with --source the task follows from --target's values "
            "(a numeric target with many distinct values is regression)"
        )
    if args.task == "regression" and args.min_accuracy is not None:
        raise ValueError("--min-accuracy is a classification gate; --task regression has none")


def plan_run(args: argparse.Namespace) -> Plan:
    """The run the flags ask for; a ValueError says what is wrong with them (nothing is
    written before they are checked)."""
    try:
        overrides = json.loads(args.conf)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--conf: not valid JSON ({exc})") from exc
    check_flags(args)
    sweep = {"search_space": {**DEMO_SEARCH_SPACE, "epochs": [args.epochs]}}
    task = args.task or "classification"
    model_name = args.model_name or MODEL_NAMES[task]
    if args.source is None:
        floor = {}
        if task == "classification":
            floor = {"min_accuracy": 0.7 if args.min_accuracy is None else args.min_accuracy}
        home = Path(args.home or SAMPLE_HOMES[task]).resolve()
        conf = {**sweep, **floor, **overrides}
        return Plan(home, None, conf, args.rows, model_name, task)
    data = Dataset(own_source(args.source), args.target)
    floor = {} if args.min_accuracy is None else {"min_accuracy": args.min_accuracy}
    home = Path(args.home or Path(".demo", "sources", source_name(data.source))).resolve()
    return Plan(home, data, {**sweep, **floor, **overrides}, args.rows, model_name)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plan = plan_run(args)
    except ValueError as exc:
        return usage_error(str(exc))
    logical_date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if args.verbose:
        return run(plan, logical_date, Screen(sys.stdout))
    log_path = plan.home / "logs" / f"demo-{logical_date:%Y%m%dT%H%M%SZ}.log"
    print(f"log (Airflow and the steps): {log_path}", flush=True)
    with output_to(log_path) as stream:
        screen = Screen(stream)
        try:
            code = run(plan, logical_date, screen)
        except Exception as exc:
            traceback.print_exc()  # into the log file
            screen.say(f"python -m demo failed: {type(exc).__name__}: {' '.join(str(exc).split())}")
            code = 1
    print(f"full log: {log_path}")
    return code


def run(plan: Plan, logical_date: dt.datetime, screen: Screen) -> int:
    """Write the data and config of ``plan``, then run the DAG, showing it on ``screen``."""
    if plan.data is None:
        data = write_sample(plan.home, logical_date, plan.rows, plan.task)
        screen.say(
            f"sample dataset ({plan.task}, target {data.target}): {plan.rows} rows -> "
            f"{rendered_path(data, logical_date)}"
        )
    else:
        data = plan.data
        screen.say(
            f"your dataset: {data.source} (target {data.target}); everything under {plan.home}"
        )
    config = write_local_config(plan.home, data, plan.model_name)
    configure_airflow(plan.home, config)
    return run_dag(logical_date, plan.conf, screen)


def write_sample(
    home: Path, logical_date: dt.datetime, rows: int, task: str = "classification"
) -> Dataset:
    """The sample dataset of ``task`` for today's run, at a dated path the config templates
    with ``ds``."""
    data = Dataset(str(home / "data" / "{{ ds }}" / "sample.parquet"), TARGETS[task])
    rendered = rendered_path(data, logical_date)
    rendered.parent.mkdir(parents=True, exist_ok=True)
    generate_for(task, rows).to_parquet(rendered, index=False)
    return data


def rendered_path(data: Dataset, logical_date: dt.datetime) -> Path:
    """The sample's path for the run of ``logical_date`` (its ``{{ ds }}`` filled in)."""
    return Path(data.source.replace("{{ ds }}", logical_date.date().isoformat()))


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
    # After a deploy, the champion scores the same data (the scoring DAG's own run).
    config["scoring"].update(
        input=data.source, output=str(home / "scores" / "{{ ds }}" / "predictions.parquet")
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


def run_dag(logical_date: dt.datetime, conf: dict[str, Any], screen: Screen) -> int:
    """Migrate the metadata DB, parse the DAG folder, run one DAG run showing its task states
    as they change, print its outcome."""
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.utils import db

    from demo.listener import TaskStates

    db.initdb()
    bag = BundleDagBag(dag_folder=DAGS_FOLDER, bundle_path=DAGS_FOLDER, bundle_name="dags-folder")
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            screen.say(f"{path}: {error}")
        return 1
    TaskStates(screen).register()
    screen.event(f"DAG {DAG_ID} started")
    dag_run = bag.dags[DAG_ID].test(logical_date=logical_date, run_conf=conf)
    print_outcome(dag_run, screen)
    if dag_run.state != "success":
        return 1
    if not has_champion():
        screen.say("\nno champion yet: nothing to score")
        return 0
    screen.event(f"DAG {SCORING_DAG_ID} started (batch scoring with the champion)")
    scoring_run = bag.dags[SCORING_DAG_ID].test(logical_date=logical_date)
    scored = xcom_value(scoring_run, SCORING_DAG_ID, "check_result")
    if scoring_run.state != "success" or not scored:
        screen.say(f"\nDAG run {scoring_run.run_id} of {SCORING_DAG_ID}: {scoring_run.state}")
        return 1
    screen.say(
        f"\nscored {scored['rows']} rows with {scored['model_name']} "
        f"v{scored['model_version']}: {scored['output_uri']}"
    )
    return 0


def has_champion() -> bool:
    """Whether the registered model has a ``champion`` (the embedded store under the home)."""
    from common.tracking import configure_mlflow

    mlflow = configure_mlflow()
    model_name = yaml.safe_load(Path(os.environ["TABULAR_TRAINING_CONFIG"]).read_text())[
        "model_name"
    ]
    try:
        mlflow.MlflowClient().get_model_version_by_alias(model_name, "champion")
    except mlflow.exceptions.MlflowException:
        return False
    return True


def xcom_value(dag_run: Any, dag_id: str, task_id: str) -> Any:
    """The return value ``task_id`` pushed in ``dag_run`` (None when there is none)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=dag_run.run_id, dag_ids=dag_id, task_ids=task_id, key="return_value"
    )
    with create_session() as session:
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


def print_outcome(dag_run: Any, screen: Screen) -> None:
    """The run's state, every task's final state, the summary and how to see the runs."""
    screen.say(f"\nDAG run {dag_run.run_id}: {dag_run.state}")
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        index = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
        screen.say(f"  {ti.task_id + index:<40} {ti.state}")
    notified = xcom_value(dag_run, DAG_ID, "notify")
    summary = None if notified is None else notified["summary"]
    if summary:
        screen.say("\n" + summary)
    home = Path(os.environ["PIPELINE_HOME"])
    screen.say(
        f"\nMLflow UI: .venv/bin/mlflow ui --backend-store-uri sqlite:///{home}/mlflow/mlflow.db "
        "--port 5000, then http://127.0.0.1:5000"
    )
