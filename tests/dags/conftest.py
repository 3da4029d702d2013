"""Airflow settings for in-process DAG tests (set before anything imports Airflow) and helpers
to write a pipeline config and parse the DAG with it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
CLUSTER_CONFIG = DAGS_FOLDER / "tabular_training.yaml"
DAG_ID = "tabular_training"

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, nested mappings key by key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Writes the cluster config with overrides (nested keys merged) and returns its path."""

    def write(overrides: dict[str, Any] | None = None, name: str = "config.yaml") -> Path:
        raw = yaml.safe_load(CLUSTER_CONFIG.read_text())
        path = tmp_path / name
        path.write_text(yaml.safe_dump(merged(raw, overrides or {})))
        return path

    return write


@pytest.fixture
def load_dag(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path | None], Any]:
    """Parses the DAG folder the way the DAG processor does, with a config file (default: the
    cluster config), and returns the DAG; an import error fails the test with its text."""

    def load(config: Path | None = None) -> Any:
        from airflow.dag_processing.dagbag import BundleDagBag

        monkeypatch.setenv("TABULAR_TRAINING_CONFIG", str(config or CLUSTER_CONFIG))
        bag = BundleDagBag(
            dag_folder=str(DAGS_FOLDER), bundle_path=str(DAGS_FOLDER), bundle_name="dags-folder"
        )
        assert not bag.import_errors, bag.import_errors
        return bag.dags[DAG_ID]

    return load


@dataclass(frozen=True)
class LocalRun:
    """One ``python -m demo`` run: its exit code, output and the run's folder."""

    returncode: int
    output: str
    run_root: Path

    def pods(self) -> list[Path]:
        """The work folder of each pod's last try."""
        return [max(task.iterdir()) for task in sorted((self.run_root / "pods").iterdir())]

    def result(self, task: str) -> Any:
        """What the pod of ``task`` (e.g. ``evaluate``, ``hyperparameter_tuning.train.0``) wrote."""
        path = max((self.run_root / "pods" / task).iterdir()) / "xcom" / "return.json"
        return json.loads(path.read_text())


def run_demo(home: Path, *args: str) -> LocalRun:
    """The main job in a fresh process (Airflow reads its settings at import), on tiny data."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "TABULAR_TRAINING", "MLFLOW_", "XCOM_", "PIPELINE_"))
    }
    before = set(_run_roots(home))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo",
            "--home",
            str(home),
            "--rows",
            "3000",
            "--epochs",
            "1",
            *args,
        ],
        cwd=DAGS_FOLDER.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    new = sorted(set(_run_roots(home)) - before)
    assert len(new) == 1, (new, proc.stdout[-3000:], proc.stderr[-3000:])
    return LocalRun(proc.returncode, proc.stdout + proc.stderr, new[0])


def _run_roots(home: Path) -> list[Path]:
    runs = home / "runs" / DAG_ID
    # Beside the run folders lives the DAG's schema store (a file).
    return [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []


@pytest.fixture(scope="session")
def local_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalRun, LocalRun]:
    """Two real local runs of the DAG on one home: the first deploys (first model); the
    second has a sweep member that fails (dropout 1.5) and a floor no candidate meets, so it
    tolerates the failure and skips the deploy."""
    home = tmp_path_factory.mktemp("local-dag")
    deployed = run_demo(home)
    skipped = run_demo(
        home,
        "--min-accuracy",
        "0.99",
        "--conf",
        json.dumps({"search_space": {"lr": [0.001], "dropout": [0.1, 1.5], "epochs": [1]}}),
    )
    return deployed, skipped
