"""Score a served model (raw rows in, labels and probabilities out) against true labels."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from common.metrics import UnusableOutputError, checked_probabilities, normalised
from contract.results import EvaluationMetrics
from evaluator.metrics import evaluation_metrics
from tabular_model.serving import probability_column
from tabular_model.transform import TableTransform


class IncompatibleModelError(ValueError):
    """The model's output does not cover the classes of the test data."""


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
