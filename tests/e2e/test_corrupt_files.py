"""Trainer and evaluator on a preprocess output whose files were damaged afterwards: a non-zero
exit, one stderr line naming the file (or column), and no return.json."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from evaluator.cli import main as evaluate
from tests.step_failures import assert_step_fails
from trainer.cli import main as train


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(2048))


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = [zero_bytes, random_bytes, truncated]


@pytest.mark.parametrize("damage", DAMAGE)
def test_trainer_refuses_a_damaged_train_split(
    preprocessed: Path,
    damage: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
    xcom_file: Path,
) -> None:
    damage(preprocessed / "train.parquet")
    args = ["--data-path", str(preprocessed), "--experiment-name", "x", "--epochs", "1"]
    assert_step_fails(train, "train", args, capsys, xcom_file, "train.parquet")


@pytest.mark.parametrize("damage", DAMAGE)
def test_evaluator_refuses_damaged_test_rows(
    preprocessed: Path,
    damage: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
    xcom_file: Path,
) -> None:
    damage(preprocessed / "raw" / "test.parquet")
    args = ["--run-id", "0" * 32, "--data-path", str(preprocessed), "--model-name", "m"]
    assert_step_fails(evaluate, "evaluate", args, capsys, xcom_file, "test.parquet")


def test_evaluator_refuses_test_rows_without_the_target(
    preprocessed: Path, capsys: pytest.CaptureFixture[str], xcom_file: Path
) -> None:
    path = preprocessed / "raw" / "test.parquet"
    pd.read_parquet(path).drop(columns=["default"]).to_parquet(path)
    args = ["--run-id", "0" * 32, "--data-path", str(preprocessed), "--model-name", "m"]
    assert_step_fails(evaluate, "evaluate", args, capsys, xcom_file, "test.parquet", "'default'")


def test_evaluator_refuses_a_missing_data_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], xcom_file: Path
) -> None:
    args = ["--run-id", "0" * 32, "--data-path", str(tmp_path / "nope"), "--model-name", "m"]
    assert_step_fails(evaluate, "evaluate", args, capsys, xcom_file, "nope")
