"""Fixtures: a registered champion (an untrained network for the sample data, logged with its
integrity record and registered with the record's tags) in an embedded MLflow store, built once
per module, and raw rows to score; for regression, a trained regression champion in a store of
its own (with a broken run beside it) and its raw rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from bench.batch_scoring import register
from tests.scorer.regression_models import RegressionRuns, build_regression_runs
from tests.trainer.workspace import (
    Workspace,
    build_workspace,
    log_untrained_model,
    torch_single_thread,
    workspace_env,
)

__all__ = ["Champion", "champion", "regression_champion", "torch_single_thread"]

MODEL_NAME = "scored-classifier"
REGRESSION_MODEL_NAME = "scored-regressor"


@dataclass(frozen=True)
class Champion:
    """A workspace whose store holds ``name`` version 1 as ``@champion``."""

    workspace: Workspace
    name: str
    version: int
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@champion"

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.workspace.activate(monkeypatch)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> Champion:
    root = tmp_path_factory.mktemp("scorer")
    with workspace_env(root):
        workspace = build_workspace(root, sample_frame)
        run_id = log_untrained_model(workspace.data)
        version = register(run_id, MODEL_NAME)
    return Champion(workspace, MODEL_NAME, version, run_id)


@pytest.fixture
def store(champion: Champion, monkeypatch: pytest.MonkeyPatch) -> Champion:
    """This test's MLflow calls (and steps) use the champion's store; its XCom stays its own."""
    champion.activate(monkeypatch)
    return champion


@pytest.fixture
def raw_rows(tmp_path: Path, champion: Champion) -> Path:
    """The workspace's raw test rows with an id column, as parquet."""
    frame = champion.workspace.raw_test().reset_index(drop=True)
    frame.insert(0, "row_id", range(1000, 1000 + len(frame)))
    path = tmp_path / "input" / "rows.parquet"
    path.parent.mkdir(parents=True)
    frame.to_parquet(path, index=False)
    return path


@dataclass(frozen=True)
class RegressionChampion(Champion):
    """A trained regression model registered as ``name`` version 1 at ``@champion``, and the
    runs it came from (one of them a run whose model predicts NaN)."""

    runs: RegressionRuns

    @property
    def broken_run_id(self) -> str:
        return self.runs.broken_run_id


@pytest.fixture(scope="module")
def regression_champion(tmp_path_factory: pytest.TempPathFactory) -> RegressionChampion:
    root = tmp_path_factory.mktemp("scorer-regression")
    runs = build_regression_runs(root)
    run_id = runs.trained["run_id"]
    with workspace_env(root):
        version = register(run_id, REGRESSION_MODEL_NAME)
    return RegressionChampion(runs.workspace, REGRESSION_MODEL_NAME, version, run_id, runs)


@pytest.fixture
def regression_store(
    regression_champion: RegressionChampion, monkeypatch: pytest.MonkeyPatch
) -> RegressionChampion:
    """This test's MLflow calls (and steps) use the regression champion's store."""
    regression_champion.activate(monkeypatch)
    return regression_champion


@pytest.fixture
def regression_rows(tmp_path: Path, regression_champion: RegressionChampion) -> Path:
    """The regression workspace's raw test rows (target included) with an id column, as
    parquet."""
    frame = regression_champion.workspace.raw_test().reset_index(drop=True)
    frame.insert(0, "delivery_id", range(5000, 5000 + len(frame)))
    path = tmp_path / "input" / "deliveries.parquet"
    path.parent.mkdir(parents=True)
    frame.to_parquet(path, index=False)
    return path
