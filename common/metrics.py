"""Classification metrics from class probabilities (shared by trainer and evaluator)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, log_loss


@dataclass(frozen=True)
class ClassificationMetrics:
    accuracy: float
    f1_score: float  # binary F1 of class index 1 with two classes, macro F1 otherwise
    loss: float  # cross-entropy (log loss)


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
