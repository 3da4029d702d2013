"""The logged served model as MLflow loads it (``mlflow.pyfunc.load_model`` on the model's own
folder): its signature's schema enforcement and the model's own checks together."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from tests.tabular_model.served import BAD_VALUES, LoggedModel, logged_model, with_bad_value

__all__ = ["logged_model"]  # the module-scoped fixture


@pytest.fixture(scope="module")
def pyfunc(logged_model: LoggedModel) -> Any:
    import mlflow

    return mlflow.pyfunc.load_model(str(logged_model.model_dir))


@pytest.fixture
def rows(logged_model: LoggedModel) -> pd.DataFrame:
    return logged_model.rows.head(20).copy()


def test_predictions_are_labels_and_finite_probabilities(pyfunc: Any, rows: pd.DataFrame) -> None:
    out = pyfunc.predict(rows)
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"]
    proba = out[["proba_no", "proba_yes"]].to_numpy("float64")
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)


def test_a_missing_column_is_refused_naming_it(pyfunc: Any, rows: pd.DataFrame) -> None:
    with pytest.raises(MlflowException, match=r"missing inputs \['age'\]") as exc:
        pyfunc.predict(rows.drop(columns=["age"]))
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(("column", "value", "problem"), BAD_VALUES)
def test_a_value_the_model_cannot_score_is_refused_naming_the_column(
    pyfunc: Any, rows: pd.DataFrame, column: str, value: object, problem: str
) -> None:
    with pytest.raises(MlflowException, match=rf"column '{column}': 1 of 20 .*{problem}") as exc:
        pyfunc.predict(with_bad_value(rows, column, value))
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"


def test_any_numeric_width_and_dictionary_columns_score_as_the_plain_rows(
    pyfunc: Any, rows: pd.DataFrame
) -> None:
    expected = pyfunc.predict(rows)
    recast = rows.astype(
        {"age": "int16", "late_payments": "uint8", "debt_ratio": "float32", "income": "Float64"}
    )
    for column in ("region", "occupation", "education", "contract_type"):
        recast[column] = recast[column].astype("category")
    out = pyfunc.predict(recast)
    pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=1e-5)


def test_missing_values_are_scored(pyfunc: Any, rows: pd.DataFrame) -> None:
    holes = rows.astype(object)
    holes.iloc[0, :] = None
    holes.at[holes.index[1], "age"] = float("nan")
    out = pyfunc.predict(holes)
    assert np.isfinite(out[["proba_no", "proba_yes"]].to_numpy("float64")).all()


def test_extra_columns_are_ignored_with_a_warning(pyfunc: Any, rows: pd.DataFrame) -> None:
    expected = pyfunc.predict(rows)
    # MLflow drops the columns the signature does not name, and says so on its own logger.
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("mlflow.models.utils")
    logger.addHandler(handler)
    try:
        out = pyfunc.predict(rows.assign(extra=1, note="x"))
    finally:
        logger.removeHandler(handler)
    pd.testing.assert_frame_equal(out, expected)
    warned = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "extra" in warned[0] and "note" in warned[0], warned


def test_no_rows_give_an_empty_table_with_the_same_columns(pyfunc: Any, rows: pd.DataFrame) -> None:
    out = pyfunc.predict(rows.iloc[:0])
    assert len(out) == 0
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"]
