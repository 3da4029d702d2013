"""``deployer.smoke.check_output``: what the smoke test accepts from a model, decided by what the
model's output signature promises (class probabilities, or one number per row) and, without a
signature, by the columns it returns."""

from __future__ import annotations

import pandas as pd
import pytest

from common.metrics import UnusableOutputError
from deployer.smoke import Output, check_output


def classified(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {"prediction": ["no"] * rows, "proba_no": [0.75] * rows, "proba_yes": [0.25] * rows}
    )


def regressed(*values: object) -> pd.DataFrame:
    return pd.DataFrame({"prediction": pd.Series(values)})


@pytest.mark.parametrize("promised", ["values", None])
def test_one_finite_number_per_row_passes(promised: Output | None) -> None:
    check_output(regressed(23.5, 41.0, 7.25), 3, promised)


@pytest.mark.parametrize("promised", ["probabilities", None])
def test_probabilities_pass_as_before(promised: Output | None) -> None:
    check_output(classified(), 3, promised)


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ((23.5, float("nan"), 7.0), "1 of 3 rows have missing, NaN or infinite predictions"),
        ((float("inf"), 2.0, -float("inf")), "2 of 3 rows have missing, NaN or infinite"),
        ((23.5, None, 7.0), "(first: 1)"),
        (("23.5", "41", "7"), "values, not numbers"),
    ],
)
@pytest.mark.parametrize("promised", ["values", None])
def test_non_finite_missing_or_text_predictions_are_refused(
    values: tuple[object, ...], needle: str, promised: Output | None
) -> None:
    with pytest.raises(UnusableOutputError) as refused:
        check_output(regressed(*values), 3, promised)
    assert needle in str(refused.value)


def test_probabilities_from_a_model_that_promises_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match=r"promises one number per row.*proba_no"):
        check_output(classified().assign(prediction=1.0), 3, "values")


def test_a_classifier_without_its_probabilities_is_still_refused() -> None:
    with pytest.raises(ValueError, match="the probability columns are missing"):
        check_output(classified()[["prediction"]], 3, "probabilities")


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        (pd.DataFrame({"minutes": [1.0, 2.0, 3.0]}), "with a 'prediction' column"),
        (regressed(1.0, 2.0), "2 predictions for 3 rows"),
        ([1.0, 2.0, 3.0], "with a 'prediction' column"),
    ],
)
def test_a_missing_prediction_column_or_row_is_refused(out: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        check_output(out, 3, "values")
