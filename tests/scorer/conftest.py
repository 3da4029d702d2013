"""Fixtures: a registered champion (an untrained network for the sample data, logged with its
integrity record and registered with the record's tags) in an embedded MLflow store, built once
per module, and raw rows to score."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from bench.batch_scoring import register
from tests.trainer.workspace import (
    Workspace,
    build_workspace,
    log_untrained_model,
    torch_single_thread,
    workspace_env,
)

__all__ = ["Champion", "champion", "torch_single_thread"]

MODEL_NAME = "scored-classifier"


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
