"""
### tabular_training

Trains a tabular classifier every day and promotes it through the MLflow model registry when it
beats the current champion on the same test rows.

1. **wait_for_data**: the run's raw data (S3 sensor in deferrable mode, or a file sensor).
2. **data_preparation**: validate → preprocess (pods), then both results are checked.
3. **hyperparameter_set**: the sweep from the params (grid or random), rendered for this run.
4. **hyperparameter_tuning.train**: one GPU trainer pod per trial (dynamic task mapping).
5. **select_best**: the best trial on validation data; failed trials are tolerated up to
   `min_success_fraction`.
6. **evaluate** (pod) → **decide** → **deploy** (pod) or **skip_deploy** → **notify**.

Each step writes under `<data.root>/<dag_id>/<run_id>/<step>/`. Infrastructure (image,
namespace, resources, GPUs, secrets) comes from the config file `tabular_training.yaml` or
`$TABULAR_TRAINING_CONFIG`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

# Every airflow.* module imported at the top level here is pre-imported once by the DAG
# processor before it forks a parse, so no parse pays for it again: keep these here, even the
# ones only tabular_pipeline uses.
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: F401
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import DAG, Param, TaskGroup, TriggerRule, get_current_context, task
from tabular_pipeline.config import PipelineConfig, load_config
from tabular_pipeline.pods import (
    StepPodOperator,
    run_folder,
    run_path,
    step_pod_kwargs,
    trainer_device,
)
from tabular_pipeline.scoring import announce_new_champion, new_champion_alias
from tabular_pipeline.step_flags import evaluation_gate
from tabular_pipeline.sweep import DEFAULT_SEARCH_SPACE

log = logging.getLogger(__name__)

CONFIG = load_config()
# Ranges of the gate's params (the evaluator checks its flags itself; these make the trigger
# form refuse a bad value before a pod starts).
GATE_PARAM_BOUNDS: dict[str, dict[str, Any]] = {
    "min_accuracy": {"minimum": 0, "maximum": 1},
    "min_r2": {"maximum": 1},
    "confidence": {"minimum": 0.5, "maximum": 0.999},
    "slice_tolerance": {"minimum": 0, "maximum": 1},
    "calibration_tolerance": {"minimum": 0, "maximum": 1},
}
# The preprocess output that the trials trained on, as its result gives it.
PREPROCESS_OUTPUT = (
    "{{ ti.xcom_pull(task_ids='data_preparation.data_ready')['preprocess']['output_uri'] }}"
)
TRAIN_TASK = "hyperparameter_tuning.train"
DEPLOY_TASK = "deploy"
SKIP_TASK = "skip_deploy"


def reference_pattern(root: str) -> str:
    """A JSON Schema regex for drift_reference: models:/NAME@ALIAS, none, or a data file under
    ``root`` without '..', '::', '?' or '#' (the validator applies the same rule again)."""
    prefix = re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", root.rstrip("/") + "/")
    return rf"^(none|models:/[^/@]+@[A-Za-z0-9_-]+|{prefix}(?!.*(\.\.|::|[?#])).+)$"


def gate_param(name: str, flag: dict[str, Any]) -> Param:
    """A run param for one of the evaluator's gate flags, with the evaluator's own default."""
    bounds = GATE_PARAM_BOUNDS.get(name, {})
    return Param(flag["default"], type=flag["type"], description=flag["help"], **bounds)


def gate_arguments() -> list[str]:
    """Every gate flag of the evaluator, from the run param of the same name."""
    return [
        a
        for name, flag in evaluation_gate().items()
        for a in (flag["flag"], f"{{{{ params.{name} }}}}")
    ]


PARAMS = {
    "drift_reference": Param(
        f"models:/{CONFIG.model_name}@champion",
        type="string",
        # A pod reads what this names: only the registry, or data under the data root.
        pattern=reference_pattern(CONFIG.data.root),
        description="data that validate measures drift against: models:/NAME@ALIAS (the raw "
        f"data that version was trained on), none, or a data URI under {CONFIG.data.root}/",
    ),
    "search": Param("grid", enum=["grid", "random"], description="grid or random search"),
    "search_space": Param(
        DEFAULT_SEARCH_SPACE,
        type=["object", "array"],
        description="trainer flag → list of values (grid), or list / {log_uniform|uniform|"
        "int_uniform: [low, high]} (random); or a list of such objects, searched one by one",
    ),
    "n_trials": Param(8, type="integer", minimum=1, description="trials of a random search"),
    "max_trials": Param(32, type="integer", minimum=1, description="refuse larger sweeps"),
    "seed": Param(0, type="integer", description="seed of the sampler and of every trial"),
    "min_success_fraction": Param(
        0.5, type="number", minimum=0, maximum=1, description="trials that must succeed"
    ),
    **{name: gate_param(name, flag) for name, flag in evaluation_gate().items()},
}


def data_sensor(config: PipelineConfig) -> Any:
    """Waits for the run's source: deferrable S3KeySensor for s3://, else a file sensor."""
    common: dict[str, Any] = {
        "task_id": "wait_for_data",
        "poke_interval": config.data.poke_interval_seconds,
        "timeout": config.data.wait_timeout_seconds,
    }
    if config.data.source.startswith("s3://"):
        return S3KeySensor(
            bucket_key=config.data.source,
            aws_conn_id=config.data.aws_conn_id,
            deferrable=True,
            **common,
        )
    return FileSensor(
        filepath=config.data.source, fs_conn_id=config.data.fs_conn_id, mode="reschedule", **common
    )


@task
def data_ready(validated: Any, prepared: Any) -> dict[str, Any]:
    """Both data results, checked against the contract: a missing one fails here, loudly."""
    from tabular_pipeline.results import require_result

    return {
        "validate": require_result("validate", validated, "data_preparation.validate"),
        "preprocess": require_result("preprocess", prepared, "data_preparation.preprocess"),
    }


@task
def hyperparameter_set(data: Any) -> list[dict[str, Any]]:
    """The sweep: each trial's config and its trainer pod's arguments, rendered here for this
    run (values handed to ``expand`` are not templated)."""
    from tabular_pipeline.sweep import hyperparameter_set as trials_of
    from tabular_pipeline.sweep import run_names, trainer_arguments

    context = get_current_context()
    params = context["params"]
    trials = trials_of(
        params["search"],
        params["search_space"],
        params["n_trials"],
        params["seed"],
        params["max_trials"],
    )
    data_path = data["preprocess"]["output_uri"]
    # One MLflow experiment per model: its runs of every day compare in one table, each named
    # for its trial and tagged with the data date and the DAG run that trained it.
    experiment = CONFIG.model_name
    dag_id, run_id = context["dag"].dag_id, context["run_id"]
    # Per trial and per DAG run, so a retried pod resumes its own checkpoint and nobody else's.
    train_root = run_folder(CONFIG, dag_id, run_id, "train")
    log.info("%d trials for experiment %s", len(trials), experiment)
    tags = {"data_date": context["ds"], "airflow.dag_id": dag_id, "airflow.dag_run_id": run_id}
    return [
        {
            "config": t,
            "arguments": [
                *trainer_arguments(
                    t, data_path, experiment, params["seed"], name, {**tags, "sweep.trial": str(i)}
                ),
                *("--device", trainer_device(CONFIG)),
                *("--checkpoint-dir", f"{train_root}/trial-{i}/checkpoints"),
            ],
        }
        for i, (t, name) in enumerate(zip(trials, run_names(trials), strict=True))
    ]


def pod_arguments(trial: dict[str, Any]) -> list[str]:
    return trial["arguments"]  # type: ignore[no-any-return]


@task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, multiple_outputs=True)
def select_best(sweep: Any) -> dict[str, Any]:
    """The winner on validation data; each trial's result pulled by its map index."""
    from tabular_pipeline import selection

    context = get_current_context()
    indexes = range(len(sweep))
    results = [context["ti"].xcom_pull(task_ids=TRAIN_TASK, map_indexes=i) for i in indexes]
    trials = selection.checked_trials(results, [f"{TRAIN_TASK}[{i}]" for i in indexes])
    best = selection.select_best(trials, context["params"]["min_success_fraction"])
    log.info("best trial: run %s, %s", best["run_id"], selection.score_text(best))
    return {
        "run_id": best["run_id"],
        "best": best,
        "trials": [
            {"config": trial["config"], "result": result}
            for trial, result in zip(sweep, trials, strict=True)
        ],
    }


@task.branch
def decide(evaluation: Any) -> str:
    """Deploy only when the evaluator says so."""
    from tabular_pipeline.results import require_result

    decision = require_result("evaluate", evaluation, "evaluate")
    log.info("evaluation: %s (should_deploy=%s)", decision["reason"], decision["should_deploy"])
    return DEPLOY_TASK if decision["should_deploy"] else SKIP_TASK


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def notify(data: Any, selected: Any, evaluation: Any) -> dict[str, Any]:
    """Logs the run summary (after deploy or skip) and returns its key facts."""
    from tabular_pipeline.results import require_result
    from tabular_pipeline.summary import render_summary

    decision = require_result("evaluate", evaluation, "evaluate")
    deployed = None
    if decision["should_deploy"]:
        pushed = get_current_context()["ti"].xcom_pull(task_ids=DEPLOY_TASK)
        deployed = require_result("deploy", pushed, DEPLOY_TASK)
    text = render_summary(data, selected["trials"], selected["run_id"], decision, deployed)
    log.info("run summary\n%s", text)
    return {
        "summary": text,
        "run_id": decision["run_id"],
        "reason": decision["reason"],
        "deployed_version": deployed["version"] if deployed else None,
    }


with DAG(
    dag_id="tabular_training",
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    # One run at a time: promotions of the champion happen in order.
    max_active_runs=1,
    params=PARAMS,
    tags=["ml", "training", "gpu"],
    doc_md=__doc__,
    default_args={"owner": "ml-platform"},
) as dag:
    wait_for_data = data_sensor(CONFIG)

    with TaskGroup("data_preparation") as data_preparation:
        validate = StepPodOperator(
            task_id="validate",
            arguments=[
                "--source",
                CONFIG.data.source,
                "--target",
                CONFIG.data.target,
                "--task",
                CONFIG.data.task,
                "--date",
                "{{ ds }}",
                "--output",
                run_path(CONFIG, "validate"),
                # Inferred on the first run that passes, then every later run is checked
                # against it (max_active_runs=1 keeps two first runs from racing).
                "--schema-store",
                f"{CONFIG.data.root}/{{{{ dag.dag_id }}}}/schema.json",
                "--reference",
                "{{ params.drift_reference }}",
                "--allowed-reference-root",
                CONFIG.data.root,
            ],
            **step_pod_kwargs(CONFIG, "validate"),
        )
        preprocess = StepPodOperator(
            task_id="preprocess",
            arguments=[
                "--input",
                CONFIG.data.source,
                "--output",
                run_path(CONFIG, "preprocess"),
                "--target",
                CONFIG.data.target,
                "--task",
                CONFIG.data.task,
            ],
            **step_pod_kwargs(CONFIG, "preprocess"),
        )
        validate >> preprocess
        data = data_ready(validate.output, preprocess.output)

    sweep_set = hyperparameter_set(data)
    with TaskGroup("hyperparameter_tuning") as hyperparameter_tuning:
        train = StepPodOperator.partial(
            task_id="train",
            max_active_tis_per_dagrun=CONFIG.max_parallel_trials,
            **step_pod_kwargs(CONFIG, "train"),
        ).expand(arguments=sweep_set.map(pod_arguments))

    best: Any = select_best(sweep_set)  # an XComArg; best["run_id"] pulls that key
    train >> best
    evaluate = StepPodOperator(
        task_id="evaluate",
        arguments=[
            "--run-id",
            best["run_id"],
            "--data-path",
            PREPROCESS_OUTPUT,
            "--model-name",
            CONFIG.model_name,
            *gate_arguments(),
        ],
        **step_pod_kwargs(CONFIG, "evaluate"),
    )
    deploy = StepPodOperator(
        task_id=DEPLOY_TASK,
        arguments=[
            "--run-id",
            best["run_id"],
            "--model-name",
            CONFIG.model_name,
            # Compare-and-set: champion must still be the version the evaluation compared with.
            "--expected-champion-version",
            "{{ ti.xcom_pull(task_ids='evaluate')['champion_version'] or 'none' }}",
            "--data-path",  # raw sample rows for the smoke test before the alias moves
            PREPROCESS_OUTPUT,
            # The same tags as the trials' runs: the version says which DAG run deployed it.
            *("--tag", "airflow.dag_id={{ dag.dag_id }}"),
            *("--tag", "airflow.dag_run_id={{ run_id }}"),
            *("--tag", "data_date={{ ds }}"),
        ],
        **step_pod_kwargs(CONFIG, "deploy"),
        # An event for the champion's asset (which schedules tabular_scoring) only when the
        # deploy moved the champion: see tabular_pipeline.scoring.
        outlets=[new_champion_alias(CONFIG)],
        post_execute=announce_new_champion(CONFIG),
    )
    skip_deploy = EmptyOperator(task_id=SKIP_TASK)
    decision = decide(evaluate.output)
    decision >> [deploy, skip_deploy]
    summary = notify(data, best, evaluate.output)
    [deploy, skip_deploy] >> summary
    wait_for_data >> data_preparation
