"""Profiles built batch by batch, in memory bounded by the batch, the sample and the number of
distinct categories, not by the rows:

- numeric columns: null, infinite and finite counts, min and max, and mean and sum of squared
  deviations merged across batches (Chan et al.'s pairwise update); plus a bottom-k sample of
  the finite values: the at most ``k`` values whose row has the smallest priority, a fixed hash
  of the row's position. The same rows give the same sample however they are batched, so a
  rerun gives the same report; while a column has at most ``k`` finite values the sample is all
  of them and every statistic is exact (rank error otherwise about ``0.5 / sqrt(k)``). The
  mean and std of a column past the sample are merged batch by batch: the same input gives the
  same figures; the same rows cut into other batches may differ in their last digits;
- categorical columns and the target: value counts by text (the text pandas gives a value,
  ``astype("string")``), exact for the first ``CATEGORY_CAP`` distinct values of a column; rows
  of later new values are counted as ``untracked``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tabular_model.transform import LogicalType
from validator.profile import ColumnProfile, NumberSummary, exact_summary

SAMPLE_VALUES = 4_000_000  # numbers held by the samples of all numeric columns (32 MB)
SAMPLE_ROWS = (10_000, 100_000)  # the least and the most values sampled per numeric column
CATEGORY_CAP = 100_000  # distinct values counted per categorical column
PRIORITY_SALT = np.uint64(0x5A11_7A1D_0B5E_55ED)


def row_priorities(start: int, count: int) -> np.ndarray:
    """A fixed pseudo-random uint64 per row position (splitmix64 of ``start .. start+count-1``):
    distinct positions never share a priority."""
    z = np.arange(start, start + count, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z += PRIORITY_SALT
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))  # type: ignore[no-any-return]


def storage_kind(kind: pa.DataType, has_nulls: bool) -> str:
    """The storage type of a column as pandas reads the whole column (what schemas record):
    integer, float, boolean, datetime, string or other. pandas reads integers with nulls as
    floats and booleans with nulls as objects."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_boolean(kind):
        return "other" if has_nulls else "boolean"
    if pa.types.is_integer(kind):
        return "float" if has_nulls else "integer"
    for name, test in (
        ("float", pa.types.is_floating),
        ("datetime", pa.types.is_timestamp),
        ("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
    ):
        if test(kind):
            return name
    return "other"


def as_numbers(column: pa.Array) -> np.ndarray:
    """float64 values of a numeric column; nulls become NaN (as pandas reads them)."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


@dataclass
class NumericAccumulator:
    """One numeric column's exact counts and moments, and its bottom-k sample."""

    k: int
    rows: int = 0
    nulls: int = 0
    infinite: int = 0
    count: int = 0
    minimum: float = np.inf
    maximum: float = -np.inf
    mean: float = 0.0
    m2: float = 0.0
    priorities: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    sample: np.ndarray = field(default_factory=lambda: np.empty(0))

    def update(self, column: pa.Array, priorities: np.ndarray) -> None:
        """Add a batch of the column; ``priorities`` holds its rows' (``row_priorities``)."""
        numbers = as_numbers(column)
        nan, inf = np.isnan(numbers), np.isinf(numbers)
        finite = ~(nan | inf)
        values = numbers[finite]
        self.rows += len(numbers)
        self.nulls += int(nan.sum())
        self.infinite += int(inf.sum())
        if len(values):
            self._merge_moments(values)
            self._merge_sample(priorities[finite], values)

    def _merge_moments(self, values: np.ndarray) -> None:
        n, mean = len(values), float(values.mean())
        m2 = float(np.square(values - mean).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def _merge_sample(self, priorities: np.ndarray, values: np.ndarray) -> None:
        if len(self.priorities) == self.k:  # only rows that beat the current k-th can enter
            keep = priorities < self.priorities.max()
            priorities, values = priorities[keep], values[keep]
        order = np.concatenate([self.priorities, priorities])
        kept = np.concatenate([self.sample, values])
        if len(order) > self.k:
            best = np.argpartition(order, self.k - 1)[: self.k]
            order, kept = order[best], kept[best]
        self.priorities, self.sample = order, kept

    def profile(self, name: str, kind: LogicalType, dtype: str) -> ColumnProfile:
        """The column's profile: exact figures from the sample while it holds every value."""
        values = np.sort(self.sample)
        numbers = exact_summary(values)  # exact, and the same floats as a whole-column read
        if self.count > len(values):
            std = float(np.sqrt(self.m2 / self.count))
            numbers = NumberSummary(self.count, self.minimum, self.maximum, self.mean, std)
        return ColumnProfile(
            name, kind, dtype, self.rows, self.nulls, self.infinite, values, None, numbers
        )


def text_form(values: pa.Array) -> list[str]:
    """Each value as text, the form pandas gives it (``astype("string")``); nulls not allowed."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values.to_pylist()  # type: ignore[no-any-return]
    return pd.Index(values.to_pandas()).astype("string").tolist()  # type: ignore[no-any-return]


def text_counts(column: pa.Array) -> dict[str, int]:
    """How often each non-null value of ``column`` occurs, by its text form (pandas'
    ``astype("string")``); a dictionary column is counted per code and named once per value."""
    if pa.types.is_dictionary(column.type):
        codes = column.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        counts = np.bincount(codes[codes >= 0], minlength=len(column.dictionary))
        present = np.flatnonzero(counts)
        values, tallies = column.dictionary.take(present), counts[present]
    else:
        found = pc.value_counts(column.drop_null())
        values, tallies = found.field("values"), found.field("counts").to_numpy()
    merged: dict[str, int] = {}
    for value, count in zip(text_form(values), tallies.tolist(), strict=True):
        merged[value] = merged.get(value, 0) + count  # 1 and 1.0 would share a text form
    return merged


@dataclass
class TextAccumulator:
    """Value counts by text of one column, exact for its first ``cap`` distinct values."""

    cap: int = field(default_factory=lambda: CATEGORY_CAP)
    rows: int = 0
    nulls: int = 0
    untracked: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def update(self, column: pa.Array) -> None:
        """Add a batch of the column (plain or dictionary-encoded)."""
        self.rows += len(column)
        self.nulls += column.null_count
        for value, count in text_counts(column).items():
            if value in self.counts:
                self.counts[value] += count
            elif len(self.counts) < self.cap:
                self.counts[value] = count
            else:
                self.untracked += count

    def profile(self, name: str, kind: LogicalType, dtype: str) -> ColumnProfile:
        """The column's profile, its counts most frequent first."""
        index = pd.Index(list(self.counts), dtype="string")
        counts = pd.Series(list(self.counts.values()), index=index, dtype="int64")
        # Most frequent first, ties by value, so reports and schemas are deterministic.
        labels = index.to_numpy(dtype=object).astype(str)
        counts = counts.iloc[np.lexsort((labels, -counts.to_numpy()))]
        return ColumnProfile(
            name, kind, dtype, self.rows, self.nulls, 0, None, counts, untracked=self.untracked
        )


def sample_size(numeric_columns: int) -> int:
    """Values sampled per numeric column: ``SAMPLE_VALUES`` shared out, within ``SAMPLE_ROWS``."""
    low, high = SAMPLE_ROWS
    return min(high, max(low, SAMPLE_VALUES // max(1, numeric_columns)))
