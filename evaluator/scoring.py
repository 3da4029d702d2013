"""Score a served model (raw rows in, labels and probabilities out) against true labels."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from common.metrics import normalised
from contract.results import EvaluationMetrics
from evaluator.metrics import evaluation_metrics
from tabular_model.serving import probability_column
from tabular_model.transform import TableTransform

# float32 softmax rows sum to 1 within about 1e-6; the deployer's smoke test allows the same.
SUM_TOLERANCE = 1e-4


class IncompatibleModelError(ValueError):
    """The model's output does not cover the classes of the test data."""


class UnusableOutputError(ValueError):
    """The model's output is not one probability per class and row (NaN, infinite, negative,
    not summing to 1, the wrong number of rows): the model is broken."""


@dataclass(frozen=True)
class Scored:
    """One model's class probabilities on the test rows and the true class indexes."""

    probabilities: np.ndarray  # float64 [rows, classes], rows sum to 1
    labels: np.ndarray  # int64 [rows], indexes into transform.classes

    @property
    def correct(self) -> np.ndarray:
        return np.asarray(self.probabilities.argmax(axis=1) == self.labels)

    @cached_property
    def metrics(self) -> EvaluationMetrics:
        return evaluation_metrics(self.probabilities, self.labels)


def score(predictions: pd.DataFrame, labels: np.ndarray, transform: TableTransform) -> Scored:
    """A served model's per-class probability columns, in the order of ``transform.classes``
    (the classes of the data being scored), against encoded ``labels``.
    IncompatibleModelError: a class's column is missing; UnusableOutputError: the output is
    not probabilities of these rows."""
    if not isinstance(predictions, pd.DataFrame):
        raise UnusableOutputError(f"the model returned {type(predictions).__name__}, not a table")
    columns = [probability_column(label) for label in transform.classes]
    missing = [c for c in columns if c not in predictions.columns]
    if missing:
        raise IncompatibleModelError(f"model output lacks probability column(s) {missing}")
    if len(predictions) != len(labels):
        raise UnusableOutputError(f"the model returned {len(predictions)} rows for {len(labels)}")
    return Scored(normalised(checked_probabilities(predictions[columns])), labels)


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
