"""Trainer fixtures: one trained run shared by the module that asks for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.trainer.workspace import (
    Workspace,
    build_workspace,
    torch_single_thread,
    train,
    workspace_env,
)

__all__ = ["torch_single_thread"]

TRAINED_TAGS = ("--tag", "data_date=2026-12-01", "--tag", "airflow.dag_run_id=manual__1")
TRAINED_FLAGS = ("--lr", "3e-3", "--seed", "5", *TRAINED_TAGS)
TRAINED_EXPERIMENT = "trainer-tests"
TRAINED_IMAGE = "registry.example/tabular-pipeline@sha256:" + "0" * 64


@dataclass(frozen=True)
class TrainedRun:
    workspace: Workspace
    result: dict[str, Any]
    xcom: Path  # the return.json the run wrote


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> TrainedRun:
    """The sample data preprocessed and trained once (2 epochs) in its own MLflow store."""
    root = tmp_path_factory.mktemp("trained")
    with workspace_env(root), pytest.MonkeyPatch.context() as mp:
        mp.setenv("TABULAR_PIPELINE_IMAGE", TRAINED_IMAGE)
        workspace = build_workspace(root, sample_frame)
        result = train(workspace.data, TRAINED_EXPERIMENT, *TRAINED_FLAGS)
    return TrainedRun(workspace, result, root / "xcom" / "return.json")
