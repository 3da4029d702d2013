"""classification_metrics against hand-computed values and scikit-learn; ``normalised``
probabilities (clipped away from 0, rows summing to 1)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss

from common.metrics import classification_metrics, normalised


def test_binary_known_values() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], dtype="float32")
    labels = np.array([0, 1, 1, 0])
    m = classification_metrics(proba, labels)
    # predicted [0, 1, 0, 1]: 2 of 4 right; class 1 has tp=1, fp=1, fn=1 -> F1 0.5
    assert m.accuracy == 0.5
    assert m.f1_score == pytest.approx(0.5)
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.4, 0.3]))
    assert m.loss == pytest.approx(expected_loss, rel=1e-6)


def test_binary_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    p1 = rng.random(500)
    proba = np.column_stack([1 - p1, p1])
    labels = (rng.random(500) < p1).astype("int64")
    m = classification_metrics(proba, labels)
    predicted = proba.argmax(1)
    assert m.accuracy == pytest.approx(accuracy_score(labels, predicted))
    assert m.f1_score == pytest.approx(f1_score(labels, predicted))  # binary, positive = 1
    assert m.loss == pytest.approx(log_loss(labels, proba), rel=1e-9)


def test_binary_f1_is_of_class_index_one() -> None:
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    labels = np.array([0, 0, 0])  # class 1 never true, predicted once: F1 of class 1 is 0
    m = classification_metrics(proba, labels)
    assert m.f1_score == 0.0
    assert m.accuracy == pytest.approx(2 / 3)


def test_three_classes_known_values_macro_f1() -> None:
    proba = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8],
         [0.3, 0.6, 0.1]]
    )  # fmt: skip
    labels = np.array([0, 1, 2, 1, 2, 2])
    # predicted [0, 1, 2, 0, 2, 1]
    m = classification_metrics(proba, labels)
    assert m.accuracy == pytest.approx(4 / 6)
    f1_0 = 2 * 1 / (2 * 1 + 1 + 0)  # tp=1 fp=1 fn=0
    f1_1 = 2 * 1 / (2 * 1 + 1 + 1)  # tp=1 fp=1 fn=1
    f1_2 = 2 * 2 / (2 * 2 + 0 + 1)  # tp=2 fp=0 fn=1
    assert m.f1_score == pytest.approx((f1_0 + f1_1 + f1_2) / 3)
    expected_loss = -np.mean(np.log([0.7, 0.8, 0.5, 0.4, 0.8, 0.1]))
    assert m.loss == pytest.approx(expected_loss)


def test_three_classes_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(400, 3))
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 3, 400)
    m = classification_metrics(proba.astype("float32"), labels)
    predicted = proba.argmax(1)
    assert m.accuracy == pytest.approx(accuracy_score(labels, predicted))
    assert m.f1_score == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert m.loss == pytest.approx(log_loss(labels, proba), rel=1e-5)


def test_labels_missing_a_class_still_use_every_column() -> None:
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    labels = np.array([0, 1])  # class 2 absent from the labels
    m = classification_metrics(proba, labels)
    assert m.accuracy == 1.0
    assert m.loss == pytest.approx(-np.mean(np.log([0.6, 0.7])))


def test_zero_probability_of_the_true_class_gives_a_finite_loss() -> None:
    proba = np.array([[1.0, 0.0], [0.0, 1.0]])
    labels = np.array([1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(proba, labels)
    assert math.isfinite(m.loss)
    assert m.loss == pytest.approx(-np.log(1e-12) / 2, rel=1e-3)
    assert m.accuracy == 0.5


def test_normalised_rows_sum_to_one_without_zeros() -> None:
    proba = np.array([[1.0, 0.0], [0.3, 0.7001]], dtype="float32")
    out = normalised(proba)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert out[0, 1] == pytest.approx(1e-12)
    assert out[1, 1] == pytest.approx(0.7001 / 1.0001, rel=1e-6)
