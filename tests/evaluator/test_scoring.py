"""``score``: a served model's output becomes class probabilities in the data's class order; an
output that does not cover the data's classes is incompatible, one that is not probabilities
(NaN, infinite, negative, rows not summing to 1, the wrong number of rows) is unusable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.metrics import UnusableOutputError
from evaluator.scoring import IncompatibleModelError, score
from tabular_model.transform import TableTransform

LABELS = np.array([0, 1, 1])


@pytest.fixture(scope="module")
def transform() -> TableTransform:
    """A transform whose classes are "no" and "yes" (the scoring needs nothing else)."""
    return TableTransform(target="default", classes=("no", "yes"), numeric=(), categorical=())


def output(no: list[float], yes: list[float]) -> pd.DataFrame:
    prediction = ["yes" if y > n else "no" for n, y in zip(no, yes, strict=True)]
    return pd.DataFrame({"prediction": prediction, "proba_no": no, "proba_yes": yes})


def test_probabilities_follow_the_datas_class_order(transform: TableTransform) -> None:
    out = output([0.8, 0.3, 0.4], [0.2, 0.7, 0.6])[["prediction", "proba_yes", "proba_no"]]
    scored = score(out, LABELS, transform)
    np.testing.assert_allclose(scored.probabilities, [[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    assert scored.metrics.accuracy == 1.0


def test_an_output_lacking_a_class_is_incompatible(transform: TableTransform) -> None:
    out = output([0.8, 0.3, 0.4], [0.2, 0.7, 0.6]).rename(columns={"proba_yes": "proba_1"})
    with pytest.raises(IncompatibleModelError, match="proba_yes"):
        score(out, LABELS, transform)


@pytest.mark.parametrize(
    ("no", "yes", "problem"),
    [
        ([0.8, np.nan, 0.4], [0.2, np.nan, 0.6], "1 of 3 rows .*NaN"),
        ([np.nan] * 3, [np.nan] * 3, "3 of 3 rows .*NaN"),
        ([0.8, np.inf, 0.4], [0.2, 0.0, 0.6], "infinite"),
        ([1.2, 0.3, 0.4], [-0.2, 0.7, 0.6], "negative"),
        ([0.8, 0.3, 0.4], [0.8, 0.7, 0.6], "sum to 1"),
    ],
)
def test_values_that_are_not_probabilities_are_unusable(
    transform: TableTransform, no: list[float], yes: list[float], problem: str
) -> None:
    with pytest.raises(UnusableOutputError, match=problem):
        score(output(no, yes), LABELS, transform)


def test_the_wrong_number_of_rows_is_unusable(transform: TableTransform) -> None:
    with pytest.raises(UnusableOutputError, match="2 rows for 3"):
        score(output([0.8, 0.3], [0.2, 0.7]), LABELS, transform)


@pytest.mark.parametrize("out", [None, np.zeros((3, 2)), pd.DataFrame({"proba_no": ["a"] * 3})])
def test_an_output_that_is_not_a_table_of_numbers_is_unusable(
    transform: TableTransform, out: object
) -> None:
    if isinstance(out, pd.DataFrame):
        out = out.assign(proba_yes=0.5)
    with pytest.raises(UnusableOutputError):
        score(out, LABELS, transform)  # type: ignore[arg-type]
