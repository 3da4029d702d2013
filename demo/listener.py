"""The Airflow listener behind the demo's live screen: one line per task state change, and for
each sweep trial its validation metrics as it finishes.

``dag.test()`` runs every task in this process, and the task runner calls the listeners'
``on_task_instance_running/success/failed/skipped`` hooks around each one (the failed hook also
on a failure that will be retried: the line then says ``up_for_retry``). Tasks the scheduler
settles without running them (a branch not taken, an upstream failure) call no hook; the final
table shows their state. Importing this module imports Airflow: do it once Airflow's settings
are in the environment."""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl
from airflow.sdk.listener import get_listener_manager

from demo.screen import Screen

# Task ids of the DAG whose results the screen shows (dags/tabular_training.py).
SWEEP_TASK = "hyperparameter_set"
TRAIN_TASK = "hyperparameter_tuning.train"
LABEL_WIDTH = len(TRAIN_TASK) + 4  # task labels padded to this, so states line up


def task_label(task_instance: Any) -> str:
    """``task_id`` with ``[map_index]`` for a mapped task (as in the final table), padded."""
    index = getattr(task_instance, "map_index", -1)
    label = str(task_instance.task_id) + (f"[{index}]" if index is not None and index >= 0 else "")
    return f"{label:<{LABEL_WIDTH}}"


def varying(configs: list[dict[str, Any]]) -> list[str]:
    """The settings whose value differs between trials (what tells the trials apart)."""
    names = sorted({name for config in configs for name in config})
    return [n for n in names if len({repr(c.get(n)) for c in configs}) > 1]


class TaskStates:
    """An Airflow listener that shows task state changes on a ``Screen``; a train task's line
    holds its validation metrics and the settings that set its trial apart."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self.trials: list[dict[str, Any]] = []  # each trial's config, by map index

    def register(self) -> None:
        """Add this listener to the task runner's listener manager (the one ``dag.test()``
        calls in this process)."""
        get_listener_manager().add_listener(self)

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self.screen.event(f"{task_label(task_instance)}  running")

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self.screen.event(f"{task_label(task_instance)}  success{self.details(task_instance)}")

    @hookimpl
    def on_task_instance_failed(
        self, previous_state: Any, task_instance: Any, error: BaseException | str | None
    ) -> None:
        state = str(getattr(task_instance, "state", None) or "failed").rsplit(".", 1)[-1].lower()
        reason = f": {error}" if error else ""
        self.screen.event(f"{task_label(task_instance)}  {state}{reason}")

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        self.screen.event(f"{task_label(task_instance)}  skipped")

    def details(self, task_instance: Any) -> str:
        """What a finished task adds to its line: the sweep's size, or a trial's metrics."""
        if task_instance.task_id not in (SWEEP_TASK, TRAIN_TASK):
            return ""
        value = task_instance.xcom_pull(
            task_ids=task_instance.task_id, map_indexes=task_instance.map_index
        )
        if task_instance.task_id == SWEEP_TASK and isinstance(value, list):
            self.trials = [trial.get("config", {}) for trial in value]
            settings = ", ".join(varying(self.trials))
            return f"  ({len(self.trials)} trials{' over ' + settings if settings else ''})"
        if task_instance.task_id == TRAIN_TASK and isinstance(value, dict):
            return f"  {self.trial_text(task_instance.map_index, value)}"
        return ""

    def trial_text(self, index: int, result: dict[str, Any]) -> str:
        """``val accuracy 0.8512  loss 0.3301  lr=0.003 width=256`` for trial ``index``
        (regression: ``val rmse 3.412  r2 0.9215  loss 0.0785  ...``, the RMSE in the
        target's units)."""
        config = self.trials[index] if 0 <= index < len(self.trials) else {}
        settings = " ".join(f"{name}={config.get(name, '-')}" for name in varying(self.trials))
        return f"{validation_metrics(result)}  {settings}".rstrip()


def validation_metrics(result: dict[str, Any]) -> str:
    """A train result's validation metrics for its task, on one line."""

    def value(name: str, shown: str) -> str:
        number = result.get(name)
        return "-" if number is None else format(number, shown)

    if result.get("task") == "regression":
        metrics = f"val rmse {value('rmse', '.4g')}  r2 {value('r2', '.4f')}"
    else:
        metrics = f"val accuracy {value('accuracy', '.4f')}"
    return f"{metrics}  loss {value('loss', '.4f')}"
