"""Bad input makes the trainer exit non-zero with one line on stderr naming the file, column or
flag, and no return.json (a stale one from an earlier attempt is removed)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from common.dataset import TARGET_COLUMN
from tests.step_failures import assert_step_fails
from trainer.cli import main

FAST = ["--epochs", "1", "--batch-size", "256", "--width", "16", "--depth", "1"]


def train_argv(data: Path, *flags: str) -> list[str]:
    return ["--data-path", str(data), "--experiment-name", "bad-input", *FAST, *flags]


@pytest.fixture
def stale_xcom(xcom_file: Path) -> Path:
    """A return.json left by an earlier attempt: a failed run must not leave it behind."""
    xcom_file.parent.mkdir(parents=True, exist_ok=True)
    xcom_file.write_text('{"stale": true}')
    return xcom_file


def assert_fails(
    argv: list[str], capsys: pytest.CaptureFixture[str], xcom: Path, *needles: str, rc: int = 1
) -> str:
    return assert_step_fails(main, "train", argv, capsys, xcom, *needles, rc=rc)


def assert_no_unfinished_runs(isolated_env: Path) -> None:
    """A failure before training may not leave a RUNNING run in the store (if it made one)."""
    db = isolated_env / "home" / "mlflow" / "mlflow.db"
    if not db.exists():
        return
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{db}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r for r in runs if r.info.status == "RUNNING"] == []


def rewrite(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def test_missing_data_path(
    tmp_path: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    missing = tmp_path / "no-such-folder"
    assert_fails(train_argv(missing), capsys, stale_xcom, str(missing), "manifest.json")
    assert_no_unfinished_runs(isolated_env)


def test_folder_without_manifest(
    preprocessed: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    (preprocessed / "manifest.json").unlink()
    assert_fails(train_argv(preprocessed), capsys, stale_xcom, str(preprocessed), "manifest.json")
    assert_no_unfinished_runs(isolated_env)


def test_deleted_transform(
    preprocessed: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (preprocessed / "transform.json").unlink()
    assert_fails(train_argv(preprocessed), capsys, stale_xcom, str(preprocessed / "transform.json"))


def test_corrupt_transform(
    preprocessed: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (preprocessed / "transform.json").write_text("{not json")
    assert_fails(train_argv(preprocessed), capsys, stale_xcom, "transform.json", "not valid JSON")


def test_transform_of_an_unknown_version(
    preprocessed: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = preprocessed / "transform.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": 99}))
    assert_fails(train_argv(preprocessed), capsys, stale_xcom, "transform.json", "99")


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_feature(
    preprocessed: Path,
    stale_xcom: Path,
    capsys: pytest.CaptureFixture[str],
    split: str,
    bad: float,
    isolated_env: Path,
) -> None:
    def inject(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[3, "debt_ratio"] = bad
        return frame

    rewrite(preprocessed / f"{split}.parquet", inject)
    assert_fails(train_argv(preprocessed), capsys, stale_xcom, f"{split}.parquet", "debt_ratio")
    assert_no_unfinished_runs(isolated_env)


def test_split_lacking_a_feature_column(
    preprocessed: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite(preprocessed / "train.parquet", lambda f: f.drop(columns=["income"]))
    assert_fails(train_argv(preprocessed), capsys, stale_xcom, "train.parquet", "income")


def test_train_split_with_a_single_class(
    preprocessed: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    def one_class(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**{TARGET_COLUMN: 0})

    rewrite(preprocessed / "train.parquet", one_class)
    assert_fails(train_argv(preprocessed), capsys, stale_xcom, "train.parquet", "one class")
    assert_no_unfinished_runs(isolated_env)


def test_empty_train_split(
    preprocessed: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite(preprocessed / "train.parquet", lambda f: f.iloc[:0])
    assert_fails(train_argv(preprocessed), capsys, stale_xcom, "train.parquet", "no rows")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_requested_without_a_device(
    preprocessed: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    argv = train_argv(preprocessed, "--device", "cuda")
    assert_fails(argv, capsys, stale_xcom, "--device cuda")
    assert_no_unfinished_runs(isolated_env)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--lr", "0"], "--lr"),
        (["--lr", "-0.1"], "--lr"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--epochs", "-1"], "--epochs"),
        (["--width", "-4"], "--width"),
        (["--patience", "0"], "--patience"),
        (["--dropout", "1"], "--dropout"),
        (["--weight-decay", "-0.0001"], "--weight-decay"),
        (["--warmup-epochs", "-1"], "--warmup-epochs"),
        (["--grad-clip", "-0.5"], "--grad-clip"),
        (["--grad-clip", "nan"], "--grad-clip"),
        (["--width", "1000000"], "--width"),
    ],
)
def test_invalid_flag_values_exit_2(
    preprocessed: Path,
    stale_xcom: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    needle: str,
) -> None:
    assert_fails(train_argv(preprocessed, *flags), capsys, stale_xcom, needle, rc=2)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--experiment-name", "x"], "--data-path"),
        (["--data-path", "d", "--experiment-name", "x", "--optimizer", "rmsprop"], "--optimizer"),
        (["--data-path", "d", "--experiment-name", "x", "--lr", "fast"], "--lr"),
        (["--data-path", "d", "--experiment-name", "x", "--device", "tpu"], "--device"),
        (["--data-path", "d", "--experiment-name", "x", "--lr-schedule", "step"], "--lr-schedule"),
        (["--data-path", "d", "--experiment-name", "x", "--class-weights", "x"], "--class-weights"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], needle: str, stale_xcom: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = assert_fails(argv, capsys, stale_xcom, needle, rc=2)
    assert "python -m trainer" in line


def test_missing_raw_sample(
    preprocessed: Path, stale_xcom: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    shutil.rmtree(preprocessed / "raw")
    assert_fails(train_argv(preprocessed), capsys, stale_xcom, "raw/sample.parquet")
    assert_no_unfinished_runs(isolated_env)


def test_failure_reason_goes_to_the_termination_log(
    preprocessed: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    termination_log = isolated_env / "termination-log"
    termination_log.write_text("")  # Kubernetes provides the file; the step fills it
    (preprocessed / "manifest.json").unlink()
    assert main(train_argv(preprocessed)) == 1
    line = capsys.readouterr().err.strip()
    assert termination_log.read_text().strip() == line
