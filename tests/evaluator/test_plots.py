"""``evaluation_figures``: ROC, precision-recall and calibration show the candidate (solid) and,
when it was scored on the same rows, the champion (dashed) on the same axes, each labelled with
its model, over the chance diagonal, the prevalence line or the perfect-calibration diagonal; the
axes name the positive class by its original label, as the legend does; beyond two classes each
class is drawn against the rest with the champion's curve in the class's colour; the confusion
matrix is the candidate's alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evaluator.plots import Plotted, evaluation_figures
from evaluator.scoring import Scored

CANDIDATE = "candidate run 1a2b3c4d"
CHAMPION = "champion v3"


def scored(labels: np.ndarray, noise: float, seed: int) -> Scored:
    """Probabilities that favour the true class, less so as ``noise`` grows."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=noise, size=(len(labels), int(labels.max()) + 1))
    logits[np.arange(len(labels)), labels] += 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Scored(probabilities, labels)


def pair(n_classes: int, rows: int = 300) -> tuple[Plotted, Plotted]:
    """A better candidate and a worse champion scored on the same rows."""
    labels = np.arange(rows) % n_classes
    return Plotted(CANDIDATE, scored(labels, 1.0, 1)), Plotted(CHAMPION, scored(labels, 3.0, 2))


def lines(figure: Any) -> dict[str, Any]:
    """Legend label -> line, for every labelled line of the figure's one axes."""
    return {line.get_label(): line for line in figure.axes[0].get_lines()}


def only(labels: dict[str, Any], start: str) -> Any:
    found = [line for label, line in labels.items() if label.startswith(start)]
    assert len(found) == 1, f"{start!r} among {list(labels)}"
    return found[0]


def is_diagonal(line: Any) -> bool:
    return list(line.get_xdata()) == [0, 1] and list(line.get_ydata()) == [0, 1]


@pytest.fixture(scope="module")
def binary() -> dict[str, Any]:
    candidate, champion = pair(2)
    return evaluation_figures(candidate, ["no", "yes"], champion)


def test_roc_shows_both_models_and_the_chance_diagonal(binary: dict[str, Any]) -> None:
    drawn = lines(binary["roc_curve.png"])
    assert len(drawn) == 3
    candidate, champion = only(drawn, f"{CANDIDATE} (AUC = "), only(drawn, f"{CHAMPION} (AUC = ")
    assert candidate.get_linestyle() == "-" and champion.get_linestyle() == "--"
    assert is_diagonal(only(drawn, "Chance level"))
    # the better model's area is the larger one, and each label carries its own
    auc = {label.split(" (AUC")[0]: float(label[-5:-1]) for label in drawn if "AUC =" in label}
    assert auc[CANDIDATE] > auc[CHAMPION] > 0.5


def test_pr_shows_both_models_and_the_prevalence_line(binary: dict[str, Any]) -> None:
    drawn = lines(binary["pr_curve.png"])
    assert len(drawn) == 3
    assert only(drawn, f"{CANDIDATE} (AP = ").get_linestyle() == "-"
    assert only(drawn, f"{CHAMPION} (AP = ").get_linestyle() == "--"
    prevalence = only(drawn, "chance level (prevalence 0.50)")
    assert list(prevalence.get_ydata()) == [0.5, 0.5]


def test_calibration_shows_both_models_and_the_perfect_diagonal(binary: dict[str, Any]) -> None:
    drawn = lines(binary["calibration_curve.png"])
    assert set(drawn) == {CANDIDATE, CHAMPION, "Perfectly calibrated"}
    assert is_diagonal(drawn["Perfectly calibrated"])
    assert drawn[CHAMPION].get_linestyle() == "--"
    assert "class yes" in binary["calibration_curve.png"].axes[0].get_xlabel()


@pytest.mark.parametrize("name", ["roc_curve.png", "pr_curve.png", "calibration_curve.png"])
def test_axes_name_the_positive_class_by_its_label(binary: dict[str, Any], name: str) -> None:
    axes = binary[name].axes[0]
    for title in (axes.get_xlabel(), axes.get_ylabel()):
        assert "class yes" in title
        assert "Positive label" not in title


def test_the_confusion_matrix_is_the_candidates() -> None:
    candidate, champion = pair(2)
    figure = evaluation_figures(candidate, ["no", "yes"], champion)["confusion_matrix.png"]
    alone = evaluation_figures(candidate, ["no", "yes"])["confusion_matrix.png"]
    counts = [text.get_text() for text in figure.axes[0].texts]
    assert counts == [text.get_text() for text in alone.axes[0].texts]
    predicted = candidate.scored.probabilities.argmax(axis=1)
    assert counts[3] == str(np.count_nonzero(predicted[candidate.scored.labels == 1] == 1))


def test_without_a_champion_the_candidate_is_alone() -> None:
    candidate, _ = pair(2)
    figures = evaluation_figures(candidate, ["no", "yes"])
    assert [label.split(" (")[0] for label in lines(figures["roc_curve.png"])] == [
        CANDIDATE,
        "Chance level",
    ]
    assert len(lines(figures["pr_curve.png"])) == 2
    assert set(lines(figures["calibration_curve.png"])) == {CANDIDATE, "Perfectly calibrated"}


def test_multiclass_pairs_each_class_candidate_and_champion() -> None:
    candidate, champion = pair(3)
    figures = evaluation_figures(candidate, ["low", "mid", "high"], champion)
    roc = lines(figures["roc_curve.png"])
    assert len(roc) == 3 * 2 + 1  # each class by each model, and one chance diagonal
    assert is_diagonal(only(roc, "Chance level"))
    for name in ("low", "mid", "high"):
        ours = only(roc, f"class {name}: {CANDIDATE} (AUC = ")
        theirs = only(roc, f"class {name}: {CHAMPION} (AUC = ")
        assert (ours.get_linestyle(), theirs.get_linestyle()) == ("-", "--")
        assert ours.get_color() == theirs.get_color()
    pr = lines(figures["pr_curve.png"])
    assert len(pr) == 3 * 3  # and each class's own prevalence line
    assert list(only(pr, "class mid: chance level").get_ydata()) == [
        pytest.approx(1 / 3),
        pytest.approx(1 / 3),
    ]
    assert "each class against the rest" in figures["roc_curve.png"].axes[0].get_xlabel()
    assert set(lines(figures["calibration_curve.png"])) == {
        CANDIDATE,
        CHAMPION,
        "Perfectly calibrated",
    }


def test_a_class_absent_from_the_rows_has_no_curve() -> None:
    labels = np.arange(90) % 2 * 2  # classes 0 and 2 only; "mid" never occurs
    candidate = Plotted(CANDIDATE, scored(labels, 1.0, 1))
    champion = Plotted(CHAMPION, Scored(candidate.scored.probabilities[::-1].copy(), labels))
    roc = lines(evaluation_figures(candidate, ["low", "mid", "high"], champion)["roc_curve.png"])
    assert not [label for label in roc if label.startswith("class mid")]
    assert len(roc) == 2 * 2 + 1


def test_a_champion_scored_on_other_rows_is_refused() -> None:
    candidate, champion = pair(2)
    moved = Plotted(CHAMPION, Scored(champion.scored.probabilities, champion.scored.labels[::-1]))
    with pytest.raises(ValueError, match="champion v3 was scored on other rows"):
        evaluation_figures(candidate, ["no", "yes"], moved)
