"""Score a served model (raw rows in, labels and probabilities out, or predicted numbers for
regression) against the true labels or values."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from common.metrics import (
    UnusableOutputError,
    checked_predictions,
    checked_probabilities,
    normalised,
)
from contract.results import EvaluationMetrics, RegressionEvaluationMetrics
from evaluator.metrics import evaluation_metrics, regression_evaluation_metrics
from tabular_model.serving import probability_column
from tabular_model.transform import TableTransform, Task

PREDICTION = "prediction"
PROBABILITY_PREFIX = probability_column("")


class IncompatibleModelError(ValueError):
    """The model cannot score the test data: its output does not cover the data's classes, or
    it is a model of the other task."""


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


@dataclass(frozen=True)
class RegressionScored:
    """One regression model's predictions on the test rows and the true values, both float64
    [rows] in the target's units."""

    predictions: np.ndarray
    actual: np.ndarray

    @cached_property
    def squared_errors(self) -> np.ndarray:
        return np.square(self.predictions - self.actual)

    @cached_property
    def metrics(self) -> RegressionEvaluationMetrics:
        return regression_evaluation_metrics(self.predictions, self.actual)


AnyScored = Scored | RegressionScored


def score_regression(predictions: pd.DataFrame, actual: np.ndarray) -> RegressionScored:
    """A served regression model's ``prediction`` column against the true values ``actual``.
    IncompatibleModelError: the output is a classifier's (probability columns) or has no
    ``prediction``; UnusableOutputError: the predictions are not finite numbers, one per row."""
    if not isinstance(predictions, pd.DataFrame):
        raise UnusableOutputError(f"the model returned {type(predictions).__name__}, not a table")
    probabilities = [c for c in predictions.columns if str(c).startswith(PROBABILITY_PREFIX)]
    if probabilities:
        raise IncompatibleModelError(
            f"the model returns class probabilities ({probabilities[:3]}): a classification "
            "model, not a regression one"
        )
    if PREDICTION not in predictions.columns:
        raise IncompatibleModelError(f"model output lacks the {PREDICTION!r} column")
    if len(predictions) != len(actual):
        raise UnusableOutputError(f"the model returned {len(predictions)} rows for {len(actual)}")
    values = checked_predictions(predictions[PREDICTION])
    return RegressionScored(values, np.asarray(actual, dtype="float64"))


def score_output(
    predictions: pd.DataFrame, truth: np.ndarray, transform: TableTransform
) -> AnyScored:
    """A served model's output scored for the data's task: ``truth`` holds encoded labels
    (classification) or the target's values in its units (regression)."""
    if transform.is_regression:
        return score_regression(predictions, truth)
    return score(predictions, truth, transform)


def model_task(model: Any) -> Task | None:
    """The task a loaded model was logged for, read from its output signature: probability
    columns are a classifier's, a ``prediction`` column alone a regression model's. None when
    the model has no output signature (its output then says it, when it is scored)."""
    metadata = getattr(model, "metadata", None)
    schema = None if metadata is None else metadata.get_output_schema()
    if schema is None or not schema.has_input_names():
        return None
    names = [str(name) for name in schema.input_names()]
    if any(name.startswith(PROBABILITY_PREFIX) for name in names):
        return "classification"
    return "regression" if names == [PREDICTION] else None
