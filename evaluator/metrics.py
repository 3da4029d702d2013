"""Test-split metrics, per-slice accuracy (classification) or RMSE (regression) and the paired
bootstrap intervals. Pure: arrays in, values out (sklearn.metrics where it has the metric, scipy's
bootstrap for the RMSE)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from common.metrics import classification_metrics, normalised, regression_metrics
from contract.results import (
    EvaluationMetrics,
    RegressionEvaluationMetrics,
    SliceAccuracy,
    SliceError,
)

ECE_BINS = 15
MISSING = "<missing>"


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Top-label ECE: rows binned by the predicted class's probability into ``bins`` equal-width
    bins; the row-weighted mean gap between each bin's accuracy and its mean confidence."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    bin_of = np.minimum((confidence * bins).astype("int64"), bins - 1)
    gap = np.bincount(bin_of, weights=correct - confidence, minlength=bins)
    return float(np.abs(gap).sum() / max(len(labels), 1))


def roc_auc(probabilities: np.ndarray, labels: np.ndarray) -> float | None:
    """Binary ROC-AUC of the second class, or macro one-vs-rest; None when the rows do not hold
    every class (the curve of an absent class is undefined)."""
    n_classes = probabilities.shape[1]
    if len(np.unique(labels)) < n_classes:
        return None
    if n_classes == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    return float(
        roc_auc_score(
            labels, probabilities, multi_class="ovr", average="macro", labels=range(n_classes)
        )
    )


def evaluation_metrics(probabilities: np.ndarray, labels: np.ndarray) -> EvaluationMetrics:
    """All test metrics of probabilities [rows, classes] against integer labels [rows]."""
    proba = normalised(probabilities)
    base = classification_metrics(proba, labels)
    n_classes = proba.shape[1]
    return EvaluationMetrics(
        accuracy=base.accuracy,
        f1_score=base.f1_score,
        roc_auc=roc_auc(proba, labels),
        log_loss=base.loss,
        brier_score=float(brier_score_loss(labels, proba, labels=range(n_classes))),
        ece=expected_calibration_error(proba, labels),
    )


def slice_accuracies(
    columns: pd.DataFrame, correct: np.ndarray, min_rows: int
) -> list[SliceAccuracy]:
    """Accuracy of every (column, value) slice of the given categorical columns holding at
    least ``min_rows`` rows; missing values form their own slice. Sorted by column, value."""
    out = []
    for name in columns.columns:
        values = columns[name].astype("string").fillna(MISSING).to_numpy()
        codes, uniques = pd.factorize(values, sort=True)
        rows = np.bincount(codes, minlength=len(uniques))
        hits = np.bincount(codes, weights=correct, minlength=len(uniques))
        out += [
            SliceAccuracy(column=str(name), value=str(v), rows=int(n), accuracy=float(h / n))
            for v, n, h in zip(uniques, rows, hits, strict=True)
            if n >= min_rows
        ]
    return out


def worst_slice(slices: list[SliceAccuracy]) -> SliceAccuracy | None:
    """The least accurate slice (ties: the larger one, then the first by column and value)."""
    return min(slices, key=lambda s: (s.accuracy, -s.rows), default=None)


def paired_bootstrap_interval(
    candidate_correct: np.ndarray,
    champion_correct: np.ndarray,
    samples: int,
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """Percentile interval of the accuracy difference (candidate - champion) over ``samples``
    resamplings of the test rows with replacement, both models scored on the same resampled
    rows. A row's paired difference is -1, 0 or +1, so a resample's mean depends only on how
    many rows of each kind it draws: a multinomial draw gives exactly the distribution of row
    resampling in O(samples), whatever the number of rows. Same seed, same interval."""
    diff = candidate_correct.astype("int64") - champion_correct.astype("int64")
    n = len(diff)
    if n == 0:
        raise ValueError("no rows to resample")
    kinds = np.array([(diff == 1).sum(), (diff == -1).sum(), (diff == 0).sum()]) / n
    counts = np.random.default_rng(seed).multinomial(n, kinds, size=samples)
    means = (counts[:, 0] - counts[:, 1]) / n
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def regression_evaluation_metrics(
    predicted: np.ndarray, actual: np.ndarray
) -> RegressionEvaluationMetrics:
    """RMSE, MAE and R² of ``predicted`` against ``actual`` [rows], in the target's units
    (``common.metrics.regression_metrics``; its ``loss``, here the test MSE, is not reported)."""
    mse = float(np.mean(np.square(predicted - actual)))
    base = regression_metrics(predicted, actual, loss=mse)
    return RegressionEvaluationMetrics(rmse=base.rmse, mae=base.mae, r2=base.r2)


def slice_errors(
    columns: pd.DataFrame, squared_errors: np.ndarray, min_rows: int
) -> list[SliceError]:
    """RMSE of every (column, value) slice of the given categorical columns holding at least
    ``min_rows`` rows; missing values form their own slice. Sorted by column, value."""
    out = []
    for name in columns.columns:
        values = columns[name].astype("string").fillna(MISSING).to_numpy()
        codes, uniques = pd.factorize(values, sort=True)
        rows = np.bincount(codes, minlength=len(uniques))
        sums = np.bincount(codes, weights=squared_errors, minlength=len(uniques))
        out += [
            SliceError(column=str(name), value=str(v), rows=int(n), rmse=math.sqrt(s / n))
            for v, n, s in zip(uniques, rows, sums, strict=True)
            if n >= min_rows
        ]
    return out


def worst_error_slice(slices: list[SliceError]) -> SliceError | None:
    """The slice of the highest RMSE (ties: the larger one, then the first by column and
    value)."""
    return min(slices, key=lambda s: (-s.rmse, -s.rows), default=None)


# Resampled row indexes held at once by the RMSE interval: about 32 MB of them, whatever the
# number of rows or resamples.
BOOTSTRAP_CHUNK = 1 << 22


def paired_rmse_reduction_interval(
    candidate_squared_errors: np.ndarray,
    champion_squared_errors: np.ndarray,
    samples: int,
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """Percentile interval of the RMSE reduction (champion's RMSE - candidate's; positive: the
    candidate is better) over ``samples`` resamplings of the test rows with replacement, both
    models scored on the same resampled rows (scipy's paired bootstrap). An RMSE is no mean of
    per-row values, so each resample costs a pass over the rows (O(samples x rows), in chunks
    of bounded memory). Same seed, same interval."""
    from scipy.stats import bootstrap

    n = len(candidate_squared_errors)
    if n == 0:
        raise ValueError("no rows to resample")

    def reduction(candidate: np.ndarray, champion: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.sqrt(champion.mean(axis=axis)) - np.sqrt(candidate.mean(axis=axis))

    if n == 1:  # every resample is the one row (scipy needs two to resample)
        value = float(reduction(candidate_squared_errors, champion_squared_errors))
        return value, value
    found = bootstrap(
        (candidate_squared_errors, champion_squared_errors),
        reduction,
        n_resamples=samples,
        batch=max(1, BOOTSTRAP_CHUNK // n),
        vectorized=True,
        paired=True,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(found.confidence_interval.low), float(found.confidence_interval.high)
