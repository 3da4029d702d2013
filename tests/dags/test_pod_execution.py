"""The ``pod_execution`` switch: on the cluster every pod task of the parsed DAG is deferrable
(the triggerer waits for the pod), fetches logs every ``logging_interval_seconds`` and is durable
(a retry after a lost worker reattaches to the running pod); with the local launcher the pods
run in the task's own process, so none of it applies. Bad values fail the DAG import with the
dotted key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk.definitions.mappedoperator import MappedOperator
from tabular_pipeline.config import ConfigError, load_config

from .conftest import CLUSTER_CONFIG

POD_TASKS = (
    "data_preparation.validate",
    "data_preparation.preprocess",
    "hyperparameter_tuning.train",
    "evaluate",
    "deploy",
)


def execution_of(dag: Any, task_id: str) -> tuple[bool, int | None, bool]:
    """``(deferrable, logging_interval, durable)`` of a pod task, mapped or not, as the
    operator was built (a mapped task keeps them in its partial kwargs until it is unmapped)."""
    task = dag.get_task(task_id)
    if isinstance(task, MappedOperator):
        kwargs = task.partial_kwargs
        return kwargs["deferrable"], kwargs["logging_interval"], kwargs["durable"]
    return task.deferrable, task.logging_interval, task.durable


def test_cluster_config_makes_every_pod_deferrable_and_durable(
    load_dag: Callable[[Path | None], Any],
) -> None:
    dag = load_dag(CLUSTER_CONFIG)
    for task_id in POD_TASKS:
        assert execution_of(dag, task_id) == (True, 60, True), task_id


def test_switch_off_on_the_cluster(
    load_dag: Callable[[Path | None], Any], write_config: Callable[..., Path]
) -> None:
    path = write_config(
        {"pod_execution": {"deferrable": False, "logging_interval_seconds": None, "durable": False}}
    )
    dag = load_dag(path)
    for task_id in POD_TASKS:
        assert execution_of(dag, task_id) == (False, None, False), task_id


def test_local_launcher_runs_pods_in_process(
    load_dag: Callable[[Path | None], Any], write_config: Callable[..., Path]
) -> None:
    # The config asks for deferrable pods, but a local process cannot be handed to the triggerer.
    path = write_config({"launcher": "local", "data": {"root": "/tmp/runs"}})
    assert load_config(path).pod_execution.deferrable
    dag = load_dag(path)
    for task_id in POD_TASKS:
        assert execution_of(dag, task_id) == (False, None, False), task_id


def test_defaults_when_the_section_is_absent(write_config: Callable[..., Path]) -> None:
    path = write_config()
    raw = yaml.safe_load(path.read_text())
    del raw["pod_execution"]
    path.write_text(yaml.safe_dump(raw))
    execution = load_config(path).pod_execution
    assert (execution.deferrable, execution.logging_interval_seconds, execution.durable) == (
        False,
        60,
        True,
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"deferrable": "yes"}, "pod_execution.deferrable: expected true or false, got 'yes'"),
        ({"logging_interval_seconds": 0}, "pod_execution.logging_interval_seconds: must be >= 1"),
        ({"deferable": True}, "pod_execution.deferable: unknown key; did you mean 'deferrable'?"),
    ],
)
def test_bad_values_name_the_key(
    write_config: Callable[..., Path], section: dict[str, Any], message: str
) -> None:
    path = write_config({"pod_execution": section})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {message}")
