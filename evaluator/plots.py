"""Evaluation plots as matplotlib figures (Agg backend, no display): confusion matrix, ROC and
precision-recall curves (one-vs-rest per class beyond two classes) and the calibration curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluator.scoring import Scored


def new_axes(title: str) -> tuple[Any, Any]:
    """A fresh figure outside pyplot's global state (nothing to close, nothing leaks)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 5), dpi=80, layout="tight")
    axes = figure.add_subplot()
    axes.set_title(title)
    return figure, axes


def positive_classes(n_classes: int) -> range:
    """The classes a curve is drawn for: the second of two, else each one against the rest."""
    return range(1, 2) if n_classes == 2 else range(n_classes)


def confusion_matrix(scored: Scored, class_names: Sequence[str]) -> Any:
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axes = new_axes("Confusion matrix (test rows)")
    ConfusionMatrixDisplay.from_predictions(
        scored.labels,
        scored.probabilities.argmax(axis=1),
        labels=range(len(class_names)),
        display_labels=list(class_names),
        ax=axes,
        colorbar=False,
    )
    return figure


def curves(scored: Scored, class_names: Sequence[str], kind: str) -> Any:
    """ROC (``kind="roc"``) or precision-recall (``kind="pr"``) curves."""
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    display: Any = RocCurveDisplay if kind == "roc" else PrecisionRecallDisplay
    figure, axes = new_axes("ROC curve" if kind == "roc" else "Precision-recall curve")
    for k in positive_classes(len(class_names)):
        truth = scored.labels == k
        if truth.all() or not truth.any():
            continue  # a class absent from (or alone in) the test rows has no curve
        display.from_predictions(
            truth, scored.probabilities[:, k], name=f"class {class_names[k]}", ax=axes
        )
    return figure


def calibration(scored: Scored, class_names: Sequence[str]) -> Any:
    """Binary: the second class's probability against its frequency; otherwise the top label's
    confidence against its accuracy (what the expected calibration error measures)."""
    from sklearn.calibration import CalibrationDisplay

    figure, axes = new_axes("Calibration (test rows)")
    if len(class_names) == 2:
        truth, confidence, name = scored.labels == 1, scored.probabilities[:, 1], class_names[1]
    else:
        truth, confidence, name = scored.correct, scored.probabilities.max(axis=1), "top label"
    if 0 < np.count_nonzero(truth) < len(truth):  # one outcome only: no curve to draw
        CalibrationDisplay.from_predictions(
            np.asarray(truth), confidence, n_bins=10, name=str(name), ax=axes
        )
    return figure


def evaluation_figures(scored: Scored, classes: Sequence[Any]) -> dict[str, Any]:
    """Artifact file name -> figure, for every evaluation plot."""
    names = [str(c) for c in classes]
    return {
        "confusion_matrix.png": confusion_matrix(scored, names),
        "roc_curve.png": curves(scored, names, "roc"),
        "pr_curve.png": curves(scored, names, "pr"),
        "calibration_curve.png": calibration(scored, names),
    }
