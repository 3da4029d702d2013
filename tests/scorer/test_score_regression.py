"""``python -m scorer`` with a regression champion: the output holds the kept input columns and
``prediction``, a float in the target's units, as the served model predicts it; the manifest and
the result list those columns; a model whose predictions are not finite is refused, batch named,
and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bench.batch_scoring import register
from common.step import StepError
from contract.xcom import read_result
from demo.sample_data import REGRESSION_TARGET
from scorer.cli import main
from scorer.job import checked_numbers
from tests.scorer.regression_models import rmse
from tests.step_failures import assert_step_fails

from .conftest import RegressionChampion
from .test_cli import served_predictions

pytestmark = pytest.mark.integration


def score(champion: RegressionChampion, source: Path, output: Path, *flags: str) -> dict[str, Any]:
    argv = ["--model", champion.uri, "--input", str(source), "--output", str(output), *flags]
    assert main(argv) == 0
    return read_result("score")


def test_a_regression_champion_writes_kept_columns_and_a_float_prediction(
    regression_store: RegressionChampion, regression_rows: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scores" / "minutes.parquet"
    keep = ("--keep-columns", "delivery_id")
    result = score(regression_store, regression_rows, output, *keep, "--batch-rows", "50")
    frame = pd.read_parquet(regression_rows)
    assert result["batches"] == -(-len(frame) // 50) > 1
    assert result["rows"] == len(frame) and result["columns"] == ["delivery_id", "prediction"]
    schema = pq.read_schema(output)
    assert schema.names == ["delivery_id", "prediction"]
    assert str(schema.field("prediction").type) == "double"
    scored = pd.read_parquet(output)
    assert scored["delivery_id"].tolist() == frame["delivery_id"].tolist()
    expected = served_predictions(regression_store, frame)
    np.testing.assert_allclose(scored["prediction"], expected["prediction"], rtol=1e-6)
    # A trained model: much closer to the delivery times than their mean is.
    truth = frame[REGRESSION_TARGET]
    assert rmse(scored["prediction"], truth) < 0.6 * rmse(np.full(len(truth), truth.mean()), truth)
    manifest = json.loads(Path(f"{output}.manifest.json").read_text())
    assert manifest["columns"] == result["columns"] and manifest["rows"] == len(frame)
    assert (manifest["model_name"], manifest["model_version"]) == (regression_store.name, 1)


def test_a_csv_output_holds_the_same_predictions(
    regression_store: RegressionChampion, regression_rows: Path, tmp_path: Path
) -> None:
    source = tmp_path / "deliveries.csv"
    pd.read_parquet(regression_rows).to_csv(source, index=False)
    parquet, csv = tmp_path / "a.parquet", tmp_path / "a.csv"
    score(regression_store, regression_rows, parquet, "--keep-columns", "delivery_id")
    result = score(regression_store, source, csv, "--keep-columns", "delivery_id")
    assert result["output_format"] == "csv" and result["columns"] == ["delivery_id", "prediction"]
    from_csv, from_parquet = pd.read_csv(csv), pd.read_parquet(parquet)
    assert list(from_csv.columns) == ["delivery_id", "prediction"]
    assert from_csv["prediction"].dtype == np.float64
    np.testing.assert_allclose(from_csv["prediction"], from_parquet["prediction"], rtol=1e-9)


def test_non_finite_predictions_are_refused_and_nothing_is_written(
    regression_store: RegressionChampion,
    regression_rows: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    register(regression_store.broken_run_id, "broken-regressor")
    output = tmp_path / "out" / "minutes.parquet"
    output.parent.mkdir()
    argv = ["--model", "models:/broken-regressor@champion", "--input", str(regression_rows)]
    assert_step_fails(main, "score", [*argv, "--output", str(output)], capsys, xcom_file,
                      f"{regression_rows} batch 0", "NaN or infinite predictions")  # fmt: skip
    assert list(output.parent.iterdir()) == []  # neither the output nor its manifest


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ([1.5, float("nan"), 2.0], "1 of 3 rows have missing, NaN or infinite predictions"),
        ([1.5, float("inf"), -float("inf")], "2 of 3 rows have missing, NaN or infinite"),
        ([1.5, None, 2.0], "(first: 1)"),
        (["1.5", "2", "3"], "values, not numbers"),  # text, even of numbers
        ([True, False, True], "bool values, not numbers"),
    ],
)
def test_a_models_unusable_predictions_are_refused_naming_the_rows(
    values: list[object], needle: str
) -> None:
    """What any model (not only ours, which refuses NaN itself) returns is checked."""
    predictions = pd.DataFrame({"prediction": pd.Series(values)})
    with pytest.raises(StepError, match="count from row 100") as refused:
        checked_numbers(predictions, "in.parquet batch 1 (rows 100-102)", 100)
    assert needle in str(refused.value) and "in.parquet batch 1" in str(refused.value)


def test_integer_predictions_are_written_as_floats() -> None:
    checked = checked_numbers(pd.DataFrame({"prediction": [3, 4]}), "in.parquet batch 0", 0)
    assert checked["prediction"].dtype == np.float64
    assert checked["prediction"].tolist() == [3.0, 4.0]
