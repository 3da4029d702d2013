"""Producer/consumer contract: every key a DAG task reads from a step's result exists in that
step's published schema (and is required when read without a default). The results fed to the
tasks are what the real steps wrote during the local DAG runs."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from tabular_pipeline import selection
from tabular_pipeline.results import load_schema
from tabular_pipeline.summary import render_summary

from .conftest import CLUSTER_CONFIG, LocalRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Recording(dict[str, Any]):
    """A result that remembers which keys were read, and how."""

    def __init__(self, step: str, value: dict[str, Any]) -> None:
        super().__init__(value)
        self.step = step
        self.subscripted: set[str] = set()
        self.got: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.subscripted.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.got.add(key)
        return super().get(key, default)


@pytest.fixture
def dag_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The DAG file imported as a module (its task callables are under ``.function``)."""
    monkeypatch.setenv("TABULAR_TRAINING_CONFIG", str(CLUSTER_CONFIG))
    module = importlib.import_module("tabular_training")
    yield module


def fake_context(monkeypatch: pytest.MonkeyPatch, module: ModuleType, **context: Any) -> None:
    monkeypatch.setattr(module, "get_current_context", lambda: context)


def fake_ti(pushed: dict[tuple[str, int | None], Any]) -> SimpleNamespace:
    def xcom_pull(task_ids: str, map_indexes: int | None = None, **_: Any) -> Any:
        return pushed.get((task_ids, map_indexes))

    return SimpleNamespace(xcom_pull=xcom_pull)


def test_every_key_tasks_read_is_in_the_producer_schema(
    local_runs: tuple[LocalRun, LocalRun],
    dag_module: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, _ = local_runs
    produced: list[Recording] = []

    def result(step: str, task: str) -> Recording:
        produced.append(Recording(step, run.result(task)))
        return produced[-1]

    data = dag_module.data_ready.function(
        result("validate", "data_preparation.validate"),
        result("preprocess", "data_preparation.preprocess"),
    )
    fake_context(
        monkeypatch,
        dag_module,
        params={
            "search": "grid",
            "search_space": {"lr": [0.001, 0.003], "width": [128, 256]},
            "n_trials": 1,
            "seed": 0,
            "max_trials": 8,
            "min_success_fraction": 0.5,
        },
        ds="2026-11-23",
        dag=dag_module.dag,
        run_id=run.run_root.name,
    )
    sweep = dag_module.hyperparameter_set.function(data)
    trials = {
        (dag_module.TRAIN_TASK, i): result("train", f"hyperparameter_tuning.train.{i}")
        for i in range(4)
    }
    fake_context(monkeypatch, dag_module, params={"min_success_fraction": 0.5}, ti=fake_ti(trials))
    best = dag_module.select_best.function(sweep)
    evaluation = result("evaluate", "evaluate")
    assert dag_module.decide.function(evaluation) == dag_module.DEPLOY_TASK
    deployed = {(dag_module.DEPLOY_TASK, None): result("deploy", "deploy")}
    fake_context(monkeypatch, dag_module, ti=fake_ti(deployed))
    outcome = dag_module.notify.function(data, best, evaluation)
    assert outcome["deployed_version"] == 1
    assert outcome["summary"] == render_summary(
        data, best["trials"], best["run_id"], evaluation, deployed[(dag_module.DEPLOY_TASK, None)]
    )

    read_steps = set()
    for value in produced:
        schema = load_schema(value.step)
        read = value.subscripted | value.got
        if read:
            read_steps.add(value.step)
        assert read <= set(schema["properties"]), (value.step, read - set(schema["properties"]))
        assert value.subscripted <= set(schema["required"]), (
            value.step,
            value.subscripted - set(schema["required"]),
        )
    assert read_steps == {"validate", "preprocess", "train", "evaluate", "deploy"}


def test_selection_reads_only_train_keys_of_real_results(
    local_runs: tuple[LocalRun, LocalRun],
) -> None:
    _, run = local_runs
    first = Recording("train", run.result("hyperparameter_tuning.train.0"))
    trials = selection.checked_trials([first, None], ["train[0]", "train[1]"])
    assert selection.select_best(trials, 0.5)["run_id"] == first["run_id"]
    assert first.subscripted <= set(load_schema("train")["required"])


def test_pod_results_on_disk_are_the_real_steps_output(
    local_runs: tuple[LocalRun, LocalRun],
) -> None:
    run, _ = local_runs
    prepared = run.result("data_preparation.preprocess")
    assert Path(prepared["train_uri"]).is_file()
    assert run.result("deploy")["version"] == 1
