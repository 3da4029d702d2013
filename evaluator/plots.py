"""Evaluation plots as matplotlib figures (Agg backend, no display): confusion matrix, ROC and
precision-recall curves (one-vs-rest per class beyond two classes) and the calibration curve.

The evaluation decides "candidate or champion", so the curves show both on the same axes when
the champion was scored on the same rows: the candidate's lines solid, the champion's dashed,
each labelled with its model, over the reference line that gives a curve its meaning (chance on
ROC, the class's prevalence on precision-recall, perfect calibration). The confusion matrix is
the candidate's alone.

Regression (``regression_figures``): predicted against actual values over the diagonal of
perfect predictions, and residuals (actual - predicted) against the predicted values over the
zero line; the candidate's points and the champion's (same rows) on the same axes, in the
target's units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluator.scoring import RegressionScored, Scored

LINESTYLES = ("-", "--")  # candidate, champion
REFERENCE_LINESTYLE = ":"  # chance, prevalence and perfect calibration: unlike either model


@dataclass(frozen=True)
class Plotted:
    """One model's scores and the name its curves carry in the legends
    (e.g. ``candidate run 1a2b3c4d``, ``champion v3``)."""

    name: str
    scored: Scored


@dataclass(frozen=True)
class PlottedValues:
    """One regression model's scores and the name its points carry in the legends."""

    name: str
    scored: RegressionScored


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


def positive_wording(class_names: Sequence[str]) -> str:
    """What the axes of a curve are about, worded as the legend words a class."""
    if len(class_names) == 2:
        return f"class {class_names[1]}"
    return "each class against the rest"


def curve_style(model: int, position: int, n_classes: int) -> dict[str, str]:
    """Two classes: one colour per model. More: one colour per class, so that a class's
    candidate and champion curves (solid, dashed) read as a pair."""
    colour = f"C{model}" if n_classes == 2 else f"C{position}"
    return {"color": colour, "linestyle": LINESTYLES[model]}


def curve_name(model: Plotted, class_names: Sequence[str], k: int) -> str:
    return model.name if len(class_names) == 2 else f"class {class_names[k]}: {model.name}"


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


def prevalence_line(truth: np.ndarray, class_names: Sequence[str], k: int, position: int) -> Any:
    """The style of a class's precision-recall chance level, its prevalence: beyond two
    classes each class has its own, coloured and named as the class."""
    label = f"chance level (prevalence {truth.mean():.2f})"
    if len(class_names) == 2:
        return {"linestyle": REFERENCE_LINESTYLE, "label": label}
    return {
        "linestyle": REFERENCE_LINESTYLE,
        "color": f"C{position}",
        "label": f"class {class_names[k]}: {label}",
    }


def label_axes(axes: Any, kind: str, class_names: Sequence[str]) -> None:
    """Axis titles that name the positive class as the legend does (sklearn's would say
    "Positive label: True" for the one-vs-rest truth drawn here)."""
    about = positive_wording(class_names)
    if kind == "roc":
        axes.set(xlabel=f"False positive rate ({about})", ylabel=f"True positive rate ({about})")
    else:
        axes.set(xlabel=f"Recall ({about})", ylabel=f"Precision ({about})")


def curves(models: Sequence[Plotted], class_names: Sequence[str], kind: str) -> Any:
    """ROC (``kind="roc"``) or precision-recall (``kind="pr"``) curves of each model."""
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    display: Any = RocCurveDisplay if kind == "roc" else PrecisionRecallDisplay
    figure, axes = new_axes("ROC curve" if kind == "roc" else "Precision-recall curve")
    n_classes, drawn = len(class_names), 0
    for position, k in enumerate(positive_classes(n_classes)):
        class_drawn = False
        for m, model in enumerate(models):
            truth = model.scored.labels == k
            if truth.all() or not truth.any():
                continue  # a class absent from (or alone in) the test rows has no curve
            reference = None
            if kind == "roc" and not drawn:  # the diagonal once, for every class
                reference = {"linestyle": REFERENCE_LINESTYLE}
            elif kind == "pr" and not class_drawn:  # once a class: both models scored these rows
                reference = prevalence_line(truth, class_names, k, position)
            display.from_predictions(
                truth,
                model.scored.probabilities[:, k],
                pos_label=True,
                name=curve_name(model, class_names, k),
                ax=axes,
                curve_kwargs=curve_style(m, position, n_classes),
                plot_chance_level=reference is not None,
                chance_level_kw=reference,
            )
            drawn, class_drawn = drawn + 1, True
    label_axes(axes, kind, class_names)
    if drawn:
        axes.legend(loc="lower right" if kind == "roc" else "lower left", fontsize="small")
    return figure


def calibration(models: Sequence[Plotted], class_names: Sequence[str]) -> Any:
    """Binary: the second class's probability against its frequency; otherwise the top label's
    confidence against its accuracy (what the expected calibration error measures), per model."""
    from sklearn.calibration import CalibrationDisplay

    figure, axes = new_axes("Calibration (test rows)")
    for m, model in enumerate(models):
        scored = model.scored
        if len(class_names) == 2:
            truth, confidence = scored.labels == 1, scored.probabilities[:, 1]
        else:
            truth, confidence = scored.correct, scored.probabilities.max(axis=1)
        if 0 < np.count_nonzero(truth) < len(truth):  # one outcome only: no curve to draw
            CalibrationDisplay.from_predictions(
                np.asarray(truth),
                confidence,
                n_bins=10,
                name=model.name,
                ax=axes,
                **curve_style(m, 0, 2),
            )
    if len(class_names) == 2:
        about = class_names[1]
        axes.set(
            xlabel=f"Mean predicted probability of class {about}",
            ylabel=f"Fraction of class {about}",
        )
    else:
        axes.set(xlabel="Mean top-label confidence", ylabel="Top-label accuracy")
    return figure


def evaluation_figures(
    candidate: Plotted, classes: Sequence[Any], champion: Plotted | None = None
) -> dict[str, Any]:
    """Artifact file name -> figure, for every evaluation plot; ``champion``: its scores on the
    same test rows, drawn beside the candidate's (None: the candidate alone).
    ValueError: the champion's scores are of other rows or other classes."""
    names = [str(c) for c in classes]
    models = [candidate]
    if champion is not None:
        same_rows = np.array_equal(champion.scored.labels, candidate.scored.labels)
        shape = candidate.scored.probabilities.shape
        if not same_rows or champion.scored.probabilities.shape != shape:
            raise ValueError(
                f"{champion.name} was scored on other rows or classes than {candidate.name}"
            )
        models.append(champion)
    return {
        "confusion_matrix.png": confusion_matrix(candidate.scored, names),
        "roc_curve.png": curves(models, names, "roc"),
        "pr_curve.png": curves(models, names, "pr"),
        "calibration_curve.png": calibration(models, names),
    }


# Points drawn per model: more only hide each other; the same rows for both models.
MAX_POINTS = 2000
MARKERS = ("o", "^")  # candidate, champion


def drawn_rows(rows: int, seed: int = 0) -> np.ndarray:
    """The indexes of the test rows a scatter shows: all, or ``MAX_POINTS`` of them chosen at
    random (the same for both models and on every run)."""
    if rows <= MAX_POINTS:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, MAX_POINTS, replace=False))


def shown_rows(rows: int) -> str:
    return f"{rows:,} test rows" if rows <= MAX_POINTS else f"{MAX_POINTS:,} of {rows:,} test rows"


def scatter(axes: Any, models: Sequence[PlottedValues], kind: str) -> None:
    """Each model's points: actual (``kind="actual"``) or residual (``kind="residual"``)
    against predicted values."""
    chosen = drawn_rows(len(models[0].scored.actual))
    for m, model in enumerate(models):
        predicted = model.scored.predictions[chosen]
        actual = model.scored.actual[chosen]
        y = actual if kind == "actual" else actual - predicted
        axes.scatter(
            predicted, y, s=10, alpha=0.5, color=f"C{m}", marker=MARKERS[m], label=model.name
        )


def predicted_vs_actual(models: Sequence[PlottedValues]) -> Any:
    rows = len(models[0].scored.actual)
    figure, axes = new_axes(f"Predicted vs actual ({shown_rows(rows)})")
    scatter(axes, models, "actual")
    values = np.concatenate(
        [models[0].scored.actual, *(model.scored.predictions for model in models)]
    )
    low, high = float(values.min()), float(values.max())
    axes.plot(
        [low, high], [low, high], color="black", linestyle=REFERENCE_LINESTYLE,
        label="perfect prediction",
    )  # fmt: skip
    axes.set(xlabel="Predicted value", ylabel="Actual value")
    axes.legend(loc="upper left", fontsize="small")
    return figure


def residuals(models: Sequence[PlottedValues]) -> Any:
    rows = len(models[0].scored.actual)
    figure, axes = new_axes(f"Residuals ({shown_rows(rows)})")
    scatter(axes, models, "residual")
    axes.axhline(0.0, color="black", linestyle=REFERENCE_LINESTYLE, label="no error")
    axes.set(xlabel="Predicted value", ylabel="Residual (actual - predicted)")
    axes.legend(loc="upper left", fontsize="small")
    return figure


def regression_figures(
    candidate: PlottedValues, champion: PlottedValues | None = None
) -> dict[str, Any]:
    """Artifact file name -> figure, for every regression plot; ``champion``: its scores on
    the same test rows, drawn beside the candidate's (None: the candidate alone).
    ValueError: the champion's scores are of other rows."""
    models = [candidate]
    if champion is not None:
        if not np.array_equal(champion.scored.actual, candidate.scored.actual):
            raise ValueError(f"{champion.name} was scored on other rows than {candidate.name}")
        models.append(champion)
    return {
        "predicted_vs_actual.png": predicted_vs_actual(models),
        "residuals.png": residuals(models),
    }
