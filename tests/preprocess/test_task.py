"""The task of a preprocess run: ``auto`` (common.task's rule) or forced with ``--task``; a
regression target is standardised on the train rows (optionally after log1p), recorded in the
transform (version 3), the manifest and the result, and written to the splits as float32; what
regression cannot learn from is refused naming the column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import dataset
from common.task import MAX_CLASS_VALUES, TargetError, infer_task, regression_values
from contract.xcom import read_result
from preprocess import job, passes
from preprocess.cli import main
from tabular_model.transform import TableTransform, TargetScaling, TransformError


def numeric_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """A price that depends on a number and a category, with noise."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, rows)
    city = rng.choice(["north", "south", "east"], rows)
    price = 1000 * size * pd.Series(city).map({"north": 1.0, "south": 1.5, "east": 0.8}).to_numpy()
    return pd.DataFrame({"size": size, "city": city, "price": price * rng.lognormal(0, 0.1, rows)})


def run(frame: pd.DataFrame, tmp_path: Path, *extra: str, target: str = "price") -> int:
    source = tmp_path / "input.parquet"
    frame.to_parquet(source, index=False)
    out = tmp_path / "out"
    return main(["--input", str(source), "--output", str(out), "--target", target, *extra])


def failure(capsys: pytest.CaptureFixture[str]) -> str:
    (line,) = capsys.readouterr().err.splitlines()
    return line


# --- the rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (pd.Series([0.5, 1.0, 2.0]), "regression"),  # a fractional value
        (pd.Series(range(MAX_CLASS_VALUES + 1)), "regression"),  # many distinct integers
        (pd.Series(list(range(MAX_CLASS_VALUES)) * 3), "classification"),  # a few codes
        (pd.Series([0.0, 1.0, None]), "classification"),  # floats holding 0/1 labels
        (pd.Series([True, False]), "classification"),
        (pd.Series(["a", "b"]), "classification"),
    ],
)
def test_auto_follows_the_stated_rule(values: pd.Series, task: str) -> None:
    assert infer_task(values) == task


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (pd.Series(["1", "2"]), r"'y' holds \w+ values, not numbers"),
        (pd.Series([True, False]), r"'y' holds booleans, not numbers"),
        (
            pd.Series([1.0, np.nan, 2.0]),
            r"'y' has 1 missing or infinite value\(s\) \(first at row 1\)",
        ),
        (pd.Series([1.0, np.inf]), r"'y' has 1 missing or infinite"),
        (pd.Series([3.0, 3.0]), r"'y' is constant \(3\)"),
    ],
)
def test_what_regression_cannot_learn_from_is_named(values: pd.Series, problem: str) -> None:
    with pytest.raises(TargetError, match=problem):
        regression_values(values, "y")


def test_target_scaling_round_trips_in_both_forms() -> None:
    values = np.array([0.0, 10.0, 1e6])
    for log in (False, True):
        scaling = TargetScaling(center=3.0, scale=2.0, log=log)
        assert scaling.scale_values(values).dtype == np.float32
        np.testing.assert_allclose(scaling.unscale(scaling.scale_values(values)), values, rtol=1e-6)
    with pytest.raises(TransformError, match="scale must be a positive number"):
        TargetScaling(center=0.0, scale=0.0)


# --- preprocess ---------------------------------------------------------------------------------


def test_a_number_target_is_regression_by_default(tmp_path: Path, xcom_file: Path) -> None:
    frame = numeric_frame()
    assert run(frame, tmp_path) == 0
    result = read_result("preprocess", xcom_file)
    assert (result["task"], result["classes"], result["schema_version"]) == ("regression", None, 2)
    out = str(tmp_path / "out")
    transform = dataset.load_transform(out)
    assert transform.task == "regression" and transform.version == 3
    assert result["target_scaling"] == transform.target_scaling.to_dict()  # type: ignore[union-attr]
    assert dataset.read_manifest(out)["task"] == "regression"
    train = dataset.load_split(out, transform, "train")
    assert train.target.dtype == np.float32
    # Standardised on the train rows: mean 0, standard deviation 1 there.
    assert abs(float(train.target.mean())) < 1e-5
    assert float(train.target.std()) == pytest.approx(1.0, rel=1e-4)
    # The raw test rows keep the target in its units; the encoded test target inverts to them.
    raw = pd.read_parquet(dataset.raw_uri(out, "test"))
    test = dataset.load_split(out, transform, "test")
    assert transform.target_scaling is not None
    np.testing.assert_allclose(
        np.sort(transform.target_scaling.unscale(test.target)),
        np.sort(raw["price"].to_numpy()),
        rtol=1e-5,
    )


def test_log_target_learns_log1p_and_records_it(tmp_path: Path, xcom_file: Path) -> None:
    frame = numeric_frame()
    assert run(frame, tmp_path, "--log-target") == 0
    scaling = read_result("preprocess", xcom_file)["target_scaling"]
    train_rows = pd.read_parquet(tmp_path / "out" / "train.parquet")
    assert scaling["log"] is True
    # log1p of prices in the hundreds of thousands: a centre near 12, not near 1e5.
    assert 10 < scaling["center"] < 14
    assert train_rows[dataset.TARGET_COLUMN].dtype == np.float32


def test_a_classification_transform_is_written_as_before(tmp_path: Path) -> None:
    frame = numeric_frame().assign(price=lambda f: (f["price"] > 150_000).astype(int))
    assert run(frame, tmp_path) == 0
    written = json.loads((tmp_path / "out" / "transform.json").read_text())
    assert written["version"] == 2 and "task" not in written and written["classes"] == [0, 1]
    assert TableTransform.from_dict(written).task == "classification"


def test_task_classification_keeps_a_many_valued_integer_target_as_classes(
    tmp_path: Path, xcom_file: Path
) -> None:
    frame = numeric_frame().assign(price=lambda f: (f["price"] // 5_000).astype(int))
    assert frame["price"].nunique() > MAX_CLASS_VALUES
    assert run(frame, tmp_path, "--task", "classification") == 0
    result = read_result("preprocess", xcom_file)
    assert result["task"] == "classification"
    assert result["classes"] == sorted(frame["price"].unique().tolist())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda f: f.assign(price=f["city"]),
            "target column 'price' does not hold numbers: a regression target must be numeric",
        ),
        (lambda f: f.assign(price=7.5), "target column 'price' is constant [7.5]"),
        (
            lambda f: f.assign(price=f["price"] - 200_000),
            "--log-target needs a non-negative target; column 'price' has -",
        ),
    ],
    ids=["text", "constant", "negative-log"],
)
def test_a_target_regression_cannot_use_is_refused(
    tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str], change, problem: str
) -> None:
    extra = ["--task", "regression"] + (["--log-target"] if "log" in problem else [])
    assert run(change(numeric_frame()), tmp_path, *extra) == 1
    assert problem in failure(capsys)
    assert not xcom_file.exists()
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_log_target_with_classification_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(numeric_frame(), tmp_path, "--task", "classification", "--log-target") == 2
    assert "--log-target scales a regression target; --task is classification" in failure(capsys)


def test_too_many_distinct_values_for_classes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (passes, job):  # a small cap stands for 100,000 distinct values
        monkeypatch.setattr(module, "LABEL_CAP", 50)
    frame = numeric_frame().assign(price=lambda f: (f["price"] // 1000).astype(int))
    assert run(frame, tmp_path, "--task", "classification") == 1
    assert "more than 50 distinct values, too many for classes" in failure(capsys)
    # ``auto`` takes such a target for a regression target without keeping its values.
    assert run(frame, tmp_path) == 0
    assert dataset.load_transform(str(tmp_path / "out")).task == "regression"
