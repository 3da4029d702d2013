"""Test metrics, slices and the paired bootstrap interval, checked against independent
computations (a direct resampling of rows, sklearn's metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from evaluator.metrics import (
    evaluation_metrics,
    expected_calibration_error,
    paired_bootstrap_interval,
    slice_accuracies,
    worst_slice,
)


def random_probabilities(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes))
    labels = (logits + rng.normal(size=(rows, classes))).argmax(axis=1)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return proba, labels


def test_binary_metrics_match_sklearn() -> None:
    proba, labels = random_probabilities(500, 2, seed=1)
    m = evaluation_metrics(proba, labels)
    assert m.accuracy == pytest.approx(accuracy_score(labels, proba.argmax(1)))
    assert m.roc_auc == pytest.approx(roc_auc_score(labels, proba[:, 1]))
    assert m.log_loss == pytest.approx(log_loss(labels, proba))
    assert m.brier_score == pytest.approx(brier_score_loss(labels, proba[:, 1]))
    assert 0 <= m.ece <= 1


def test_multiclass_metrics_use_macro_one_vs_rest_and_the_full_brier_score() -> None:
    proba, labels = random_probabilities(600, 4, seed=2)
    m = evaluation_metrics(proba, labels)
    assert m.roc_auc == pytest.approx(roc_auc_score(labels, proba, multi_class="ovr"))
    one_hot = np.eye(4)[labels]
    assert m.brier_score == pytest.approx(((proba - one_hot) ** 2).sum(1).mean())


def test_roc_auc_is_none_when_a_class_is_absent() -> None:
    proba, _ = random_probabilities(50, 3, seed=3)
    assert evaluation_metrics(proba, np.zeros(50, dtype=int)).roc_auc is None


def test_ece_of_a_calibrated_and_an_overconfident_model() -> None:
    rng = np.random.default_rng(4)
    confidence = rng.uniform(0.5, 1.0, 20000)
    labels = (rng.random(20000) < confidence).astype(int)  # right as often as it claims
    calibrated = np.column_stack([1 - confidence, confidence])
    assert expected_calibration_error(calibrated, labels) < 0.02
    sure = np.column_stack([np.zeros(20000), np.ones(20000)])
    assert expected_calibration_error(sure, labels) == pytest.approx(1 - labels.mean())


def test_slices_count_rows_and_accuracy_and_keep_missing_values_apart() -> None:
    columns = pd.DataFrame({"colour": ["red", "red", "blue", None, None, "red"]})
    correct = np.array([1, 0, 1, 1, 1, 1], dtype=bool)
    slices = [(s.value, s.rows, s.accuracy) for s in slice_accuracies(columns, correct, 1)]
    assert slices == [("<missing>", 2, 1.0), ("blue", 1, 1.0), ("red", 3, pytest.approx(2 / 3))]
    assert {s.column for s in slice_accuracies(columns, correct, 1)} == {"colour"}
    assert [s.value for s in slice_accuracies(columns, correct, 2)] == ["<missing>", "red"]
    assert worst_slice(slice_accuracies(columns, correct, 1)).value == "red"  # type: ignore[union-attr]
    assert worst_slice([]) is None


def direct_bootstrap(
    a: np.ndarray, b: np.ndarray, samples: int, confidence: float, seed: int
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(a), size=(samples, len(a)))
    means = a[rows].mean(1) - b[rows].mean(1)
    tail = (1 - confidence) / 2
    return tuple(np.quantile(means, [tail, 1 - tail]))  # type: ignore[return-value]


def test_bootstrap_interval_matches_resampling_the_rows() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random(400) < 0.8, rng.random(400) < 0.75
    ours = paired_bootstrap_interval(a, b, 4000, 0.9, seed=0)
    direct = direct_bootstrap(a.astype(float), b.astype(float), 4000, 0.9, seed=1)
    assert ours == pytest.approx(direct, abs=0.01)
    assert ours[0] < a.mean() - b.mean() < ours[1]


def test_bootstrap_is_reproducible_by_seed() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.random(300) < 0.7, rng.random(300) < 0.7
    first = paired_bootstrap_interval(a, b, 500, 0.95, seed=3)
    assert paired_bootstrap_interval(a, b, 500, 0.95, seed=3) == first
    assert paired_bootstrap_interval(a, b, 500, 0.95, seed=4) != first


def test_identical_models_have_a_zero_width_interval() -> None:
    a = np.random.default_rng(7).random(100) < 0.5
    assert paired_bootstrap_interval(a, a, 200, 0.95, seed=0) == (0.0, 0.0)


def test_higher_confidence_gives_a_wider_interval() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.random(300) < 0.8, rng.random(300) < 0.7
    low90, high90 = paired_bootstrap_interval(a, b, 2000, 0.90, seed=0)
    low99, high99 = paired_bootstrap_interval(a, b, 2000, 0.99, seed=0)
    assert low99 < low90 and high99 > high90
