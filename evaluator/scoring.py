"""Score a served model (raw rows in, labels and probabilities out) against true labels."""

from __future__ import annotations

import pandas as pd

from preprocess.transform import TableTransform, encode_target
from trainer.metrics import ClassificationMetrics, classification_metrics
from trainer.serving import probability_column


class IncompatibleModelError(ValueError):
    """The model's output does not cover the classes of the test data."""


def score(
    predictions: pd.DataFrame, labels: pd.Series, transform: TableTransform
) -> ClassificationMetrics:
    """Metrics from a served model's per-class probability columns, in the order of
    ``transform.classes`` (the classes of the data being scored)."""
    columns = [probability_column(label) for label in transform.classes]
    missing = [c for c in columns if c not in predictions.columns]
    if missing:
        raise IncompatibleModelError(f"model output lacks probability column(s) {missing}")
    probabilities = predictions[columns].to_numpy("float64")
    return classification_metrics(probabilities, encode_target(transform, labels))
