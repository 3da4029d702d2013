"""Fitting the transform on the training rows, one batch at a time, in bounded memory.

- standard scaling: count, mean and sum of squared deviations per column, merged across batches
  with Chan et al.'s pairwise update (no cancellation, unlike a running sum of squares);
- robust and quantile scaling: the quantiles of a uniform sample of at most ``sample_rows`` train
  rows. A bottom-k sample (the rows with the smallest hash priority) is used rather than a
  streaming sketch (KLL, t-digest): it needs no extra dependency, is exact while train fits in
  it, does not depend on how the input is cut into batches, and its rank error (about
  ``0.5 / sqrt(sample_rows)``, 0.16 % at 100 000 rows) is far below what scaling needs;
- categorical vocabularies: value counts per column, merged per batch (memory grows with the
  number of distinct values, not rows).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from preprocess.split import position_uniforms
from tabular_model.transform import (
    CategoricalColumn,
    Label,
    LogicalType,
    NumericColumn,
    Scaling,
    TableTransform,
    TargetScaling,
    Task,
)

QUANTILE_POINTS = 101  # stored per column for quantile scaling (every percentile)
SAMPLE_VALUES = 4_000_000  # numbers held by the quantile sample (32 MB), spread over the columns
PRIORITY_SALT = 0x5EED_5A11  # sample priorities are independent of the split's hash


@dataclass(frozen=True)
class FitOptions:
    scaling: Scaling = "robust"
    min_frequency: int = 5
    sample_rows: int = 100_000  # the most train rows kept for robust/quantile scaling
    seed: int = 42
    log_target: bool = False  # a regression target is learnt as log1p(target)


@dataclass
class Moments:
    """Per-column count, mean and sum of squared deviations of the non-missing values."""

    width: int
    count: np.ndarray = field(init=False)
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.count, self.mean, self.m2 = (np.zeros(self.width) for _ in range(3))

    def update(self, values: np.ndarray) -> None:
        """Merge a [rows, width] float64 batch (NaN = missing)."""
        missing = np.isnan(values)
        n = values.shape[0] - missing.sum(axis=0).astype(np.float64)
        deviations = np.where(missing, 0.0, values)
        mean = deviations.sum(axis=0) / np.maximum(n, 1.0)
        deviations -= mean
        deviations[missing] = 0.0
        m2 = np.einsum("ij,ij->j", deviations, deviations)
        total = self.count + n
        delta = mean - self.mean
        weight = np.divide(n, total, out=np.zeros_like(n), where=total > 0)
        self.mean = self.mean + delta * weight
        self.m2 = self.m2 + m2 + delta**2 * self.count * weight
        self.count = total

    def std(self) -> np.ndarray:
        return np.sqrt(
            np.divide(self.m2, self.count, out=np.zeros_like(self.m2), where=self.count > 0)
        )


class BottomKSample:
    """A uniform sample without replacement of at most ``k`` rows: the rows whose priority (a
    hash of the row's position) is smallest. Same rows, same sample, however they are batched."""

    def __init__(self, k: int, width: int) -> None:
        self.k = k
        self.rows = np.empty((0, width))
        self.priorities = np.empty(0)

    def update(self, priorities: np.ndarray, values: np.ndarray) -> None:
        if len(self.priorities) == self.k:  # only rows that beat the current k-th can enter
            keep = priorities < self.priorities.max()
            priorities, values = priorities[keep], values[keep]
        rows = np.concatenate([self.rows, values])
        order = np.concatenate([self.priorities, priorities])
        if len(order) > self.k:
            best = np.argpartition(order, self.k - 1)[: self.k]
            rows, order = rows[best], order[best]
        self.rows, self.priorities = rows, order

    def quantiles(self, probabilities: np.ndarray) -> list[np.ndarray | None]:
        """Per column, its quantiles at ``probabilities``; None for a column with no values."""
        out: list[np.ndarray | None] = []
        for column in self.rows.T:
            present = column[~np.isnan(column)]
            out.append(np.quantile(present, probabilities) if present.size else None)
        return out


def text_counts(column: pa.Array, rows: np.ndarray) -> dict[str, int]:
    """How often each non-missing value occurs in the rows selected by the boolean mask
    ``rows``, by its text form (the form vocabularies hold: pandas' ``astype("string")``)."""
    if pa.types.is_dictionary(column.type):  # counted per code, named once per distinct value
        codes = column.indices.fill_null(-1).to_numpy(zero_copy_only=False)[rows]
        counts = np.bincount(codes[codes >= 0], minlength=len(column.dictionary))
        present = np.flatnonzero(counts)
        values = column.dictionary.take(present)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            text = values.to_pylist()  # already their text form
        else:
            text = pd.Index(values.to_pandas()).astype("string").tolist()
        pairs = zip(text, counts[present].tolist(), strict=True)
    else:
        series = column.to_pandas()
        pairs = series[rows].dropna().astype("string").value_counts().items()
    found: dict[str, int] = {}
    for value, count in pairs:  # two values can share a text form (1 and "1"): add them up
        found[value] = found.get(value, 0) + count
    return found


def numeric_matrix(batch: pa.RecordBatch, names: list[str], rows: np.ndarray) -> np.ndarray:
    """float64 [selected rows, columns]; nulls become NaN (as pandas' conversion does)."""
    positions = np.flatnonzero(rows)
    values = np.empty((len(names), len(positions))).T  # column-major: each column contiguous
    for i, name in enumerate(names):
        column = batch.column(name).to_numpy(zero_copy_only=False)
        np.take(column.astype(np.float64, copy=False), positions, out=values[:, i])
    return values


class TransformFitter:
    """Accumulates train statistics batch by batch; ``transform(classes)`` gives the fitted
    transform. ``columns`` maps each feature column to its logical type, in input order."""

    def __init__(
        self,
        target: str,
        columns: dict[str, LogicalType],
        options: FitOptions,
        target_is_number: bool = False,
    ) -> None:
        self.target, self.options = target, options
        # A number target may turn out to be a regression target (``auto`` knows only after the
        # whole pass): its train moments, raw and log1p (NaN below -1), are kept just in case.
        self.target_moments = Moments(2) if target_is_number else None
        self.target_min = math.inf
        self.numeric = [name for name, kind in columns.items() if kind == "numeric"]
        self.categorical = [name for name, kind in columns.items() if kind == "categorical"]
        self.rows = 0
        self.moments = Moments(len(self.numeric))
        k = min(options.sample_rows, max(10_000, SAMPLE_VALUES // max(1, len(self.numeric))))
        self.sample = BottomKSample(k, len(self.numeric))
        self.counts: dict[str, Counter[str]] = {name: Counter() for name in self.categorical}

    def update(self, batch: pa.RecordBatch, train: np.ndarray, start: int) -> None:
        """Add the rows of ``batch`` where the boolean mask ``train`` is set; the batch's first
        row is row ``start`` of the input (row positions set the sample's priorities). Works on
        Arrow data: no pandas conversion of the whole batch is needed to fit."""
        values = numeric_matrix(batch, self.numeric, train)
        self.rows += len(values)
        self.moments.update(values)
        if self.options.scaling != "standard":
            positions = np.flatnonzero(train) + start
            priorities = position_uniforms(positions, self.options.seed ^ PRIORITY_SALT)
            self.sample.update(priorities, values)
        for name in self.categorical:
            self.counts[name].update(text_counts(batch.column(name), train))
        if self.target_moments is not None:
            target = numeric_matrix(batch, [self.target], train)[:, 0]
            finite = target[np.isfinite(target)]
            if finite.size:
                self.target_min = min(self.target_min, float(finite.min()))
            with np.errstate(invalid="ignore", divide="ignore"):
                logged = np.where(target > -1, np.log1p(np.maximum(target, -1)), np.nan)
            self.target_moments.update(np.column_stack([target, logged]))

    def target_scaling(self) -> TargetScaling:
        """The standardisation of a regression target on the train rows (of ``log1p`` of it with
        ``log_target``)."""
        assert self.target_moments is not None, "the target is not a number column"
        column = 1 if self.options.log_target else 0
        mean = float(self.target_moments.mean[column])
        std = float(self.target_moments.std()[column])
        return TargetScaling(mean, usable_scale(std, 1.0), self.options.log_target)

    def transform(
        self, classes: tuple[Label, ...], task: Task = "classification"
    ) -> TableTransform:
        probabilities = np.linspace(0.0, 1.0, QUANTILE_POINTS)
        if self.options.scaling == "standard":
            quantiles: list[np.ndarray | None] = [None] * len(self.numeric)
        else:
            quantiles = self.sample.quantiles(probabilities)
        numeric = tuple(self._numeric(i, q) for i, q in enumerate(quantiles))
        categorical = tuple(self._categorical(name) for name in self.categorical)
        if task == "regression":
            scaling = self.target_scaling()
            return TableTransform(self.target, (), numeric, categorical, task, scaling)
        return TableTransform(self.target, classes, numeric, categorical)

    def _numeric(self, i: int, quantiles: np.ndarray | None) -> NumericColumn:
        name, count = self.numeric[i], int(self.moments.count[i])
        missing = count < self.rows
        fallback = usable_scale(float(self.moments.std()[i]), 1.0)
        scaling = self.options.scaling
        if scaling == "standard" or quantiles is None:  # no values: neutral standard scaling
            mean = float(self.moments.mean[i]) if count else 0.0
            return NumericColumn(name, mean if math.isfinite(mean) else 0.0, fallback, missing)
        median = float(quantiles[QUANTILE_POINTS // 2])
        if scaling == "quantile":
            return NumericColumn(name, median, 1.0, missing, scaling, tuple(map(float, quantiles)))
        # A zero IQR (a column mostly one value) would blow the rest up: fall back to the std.
        iqr = float(quantiles[75] - quantiles[25])
        return NumericColumn(name, median, usable_scale(iqr, fallback), missing, scaling)

    def _categorical(self, name: str) -> CategoricalColumn:
        kept = [(v, n) for v, n in self.counts[name].items() if n >= self.options.min_frequency]
        # Most frequent first, ties by value, so the vocabulary is deterministic.
        ordered = sorted(kept, key=lambda kv: (-kv[1], kv[0]))
        return CategoricalColumn(name, tuple(str(value) for value, _ in ordered), other_code=True)


def usable_scale(scale: float, fallback: float) -> float:
    """``scale`` when it can divide: ``fallback`` for zero (a column of one value) or NaN, the
    largest float when the spread overflowed (values near float64's limits), so that scaled
    features stay finite."""
    if 0 < scale < math.inf:
        return scale
    return sys.float_info.max if scale == math.inf else fallback
