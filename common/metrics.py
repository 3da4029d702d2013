"""Classification metrics from class probabilities (shared by trainer and evaluator)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss


@dataclass(frozen=True)
class ClassificationMetrics:
    accuracy: float
    f1_score: float  # binary F1 of class index 1 with two classes, macro F1 otherwise
    loss: float  # cross-entropy (log loss)


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
