"""Shared fixtures: every test gets its own XCom path, pipeline home and embedded MLflow store."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import settings

from demo.sample_data import TARGET, generate
from tests.s3 import s3_bucket, s3_server  # noqa: F401  (fixtures for every test module)

StepMain = Callable[[Sequence[str] | None], int]

# The property tests draw the same examples on every run of the suite, so a result never depends
# on luck; HYPOTHESIS_PROFILE=explore draws new ones each run (to look for new failures).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XCOM_RETURN_PATH, PIPELINE_HOME (embedded sqlite MLflow) and no tracking server."""
    monkeypatch.setenv("XCOM_RETURN_PATH", str(tmp_path / "xcom" / "return.json"))
    monkeypatch.setenv("PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TERMINATION_LOG_PATH", str(tmp_path / "termination-log"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    return tmp_path


@pytest.fixture
def xcom_file(isolated_env: Path) -> Path:
    return isolated_env / "xcom" / "return.json"


@pytest.fixture
def read_xcom(xcom_file: Path) -> Callable[[], dict[str, Any]]:
    return lambda: json.loads(xcom_file.read_text())


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    """A small deterministic sample of the project's dataset (target column ``default``)."""
    return generate(3000, seed=11)


@pytest.fixture
def sample_parquet(tmp_path: Path, sample_frame: pd.DataFrame) -> Path:
    path = tmp_path / "raw" / "data.parquet"
    path.parent.mkdir(parents=True)
    sample_frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def preprocessed(tmp_path: Path, sample_parquet: Path) -> Path:
    """A complete preprocess output folder for the sample data."""
    from preprocess.cli import main

    output = tmp_path / "processed"
    args = ["--input", str(sample_parquet), "--output", str(output), "--target", TARGET]
    assert main(args) == 0
    return output


__all__ = ["TARGET"]
