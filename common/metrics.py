"""Classification metrics from class probabilities and regression metrics from predicted values
(shared by trainer, evaluator and benchmarks)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)


@dataclass(frozen=True)
class ClassificationMetrics:
    accuracy: float
    f1_score: float  # binary F1 of class index 1 with two classes, macro F1 otherwise
    loss: float  # cross-entropy (log loss)


@dataclass(frozen=True)
class RegressionMetrics:
    rmse: float  # root mean squared error, in the target's units
    mae: float  # mean absolute error, in the target's units
    r2: float  # coefficient of determination (1: perfect; 0: no better than the mean)
    loss: float  # the training loss (MSE or Huber) on the standardised target


# float32 softmax rows sum to 1 within about 1e-6.
SUM_TOLERANCE = 1e-4


class UnusableOutputError(ValueError):
    """A model's output is not one probability per class and row (NaN, infinite, negative,
    not summing to 1, the wrong number of rows): the model is broken."""


def normalised(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities [rows, classes] as float64, clipped away from 0 and rescaled to sum to 1 per
    row (float32 softmax outputs sum to 1 only up to rounding, which sklearn's checks refuse; a
    zero would make the log loss infinite)."""
    clipped = np.clip(probabilities.astype("float64"), 1e-12, 1.0)
    return clipped / clipped.sum(axis=1, keepdims=True)


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> ClassificationMetrics:
    """Metrics of probabilities [rows, classes] against integer labels [rows]."""
    n_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    average = "binary" if n_classes == 2 else "macro"
    return ClassificationMetrics(
        accuracy=float(accuracy_score(labels, predicted)),
        f1_score=float(f1_score(labels, predicted, average=average, zero_division=0)),
        loss=float(log_loss(labels, normalised(probabilities), labels=range(n_classes))),
    )


def regression_metrics(predicted: np.ndarray, actual: np.ndarray, loss: float) -> RegressionMetrics:
    """Metrics of ``predicted`` against ``actual`` values [rows], both in the target's units;
    ``loss`` is measured by the caller on the scale it trains on. R² of a constant ``actual``
    (one row included) is 1 for a perfect prediction and 0 otherwise (sklearn's finite
    convention), never NaN."""
    predicted = np.asarray(predicted, dtype="float64")
    actual = np.asarray(actual, dtype="float64")
    rmse = math.sqrt(float(mean_squared_error(actual, predicted)))
    # sklearn gives NaN for a single row
    r2 = float(r2_score(actual, predicted)) if actual.size > 1 else float(rmse == 0)
    return RegressionMetrics(
        rmse=rmse, mae=float(mean_absolute_error(actual, predicted)), r2=r2, loss=float(loss)
    )


def checked_probabilities(table: pd.DataFrame) -> np.ndarray:
    """The table as float64 [rows, classes], after checking that every row holds finite,
    non-negative probabilities summing to 1 (UnusableOutputError naming the rows otherwise)."""
    try:
        values = table.to_numpy("float64")
    except (TypeError, ValueError) as exc:
        raise UnusableOutputError(f"the probability columns are not numbers ({exc})") from exc
    refuse_rows(~np.isfinite(values).all(axis=1), "NaN or infinite probabilities")
    refuse_rows((values < 0).any(axis=1), "negative probabilities")
    refuse_rows(
        np.abs(values.sum(axis=1) - 1) > SUM_TOLERANCE, "probabilities that do not sum to 1"
    )
    return values


def refuse_rows(bad: np.ndarray, what: str) -> None:
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise UnusableOutputError(
            f"{int(bad.sum())} of {len(bad)} rows have {what} (first: {first})"
        )


def checked_predictions(values: pd.Series) -> np.ndarray:
    """A regression model's ``prediction`` column as float64 [rows], after checking that it
    holds numbers and that every row has a finite one (UnusableOutputError naming the rows
    otherwise): a missing, NaN or infinite prediction comes from a broken model, never from
    the data, so it is refused rather than passed on."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        raise UnusableOutputError(f"the predictions are {values.dtype} values, not numbers")
    numbers = values.to_numpy("float64", na_value=np.nan)
    refuse_rows(~np.isfinite(numbers), "missing, NaN or infinite predictions")
    return numbers
