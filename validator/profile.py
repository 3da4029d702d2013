"""Per-column statistics of a frame, computed once and shared by the schema, the checks, the
drift comparison and the report. Pure: a frame in, profiles out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from tabular_model.transform import LogicalType, logical_type

QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
TOP_VALUES = 10  # most frequent values listed per categorical column in the report


@dataclass(frozen=True)
class ColumnProfile:
    """What one column holds. ``values`` are the finite numbers sorted ascending (numeric
    columns; sorted once so that every quantile after is an index) and ``counts`` the value
    counts of the non-null values as strings, most frequent first (categorical)."""

    name: str
    type: LogicalType
    dtype: str
    rows: int
    null_count: int
    inf_count: int
    values: np.ndarray | None
    counts: pd.Series | None

    @property
    def null_rate(self) -> float:
        return self.null_count / self.rows if self.rows else 0.0

    @cached_property
    def summary(self) -> dict[str, Any]:
        """JSON-safe statistics for the report (no NaN: absent values are None); computed once,
        treat as read-only (``stats()`` gives a copy)."""
        out: dict[str, Any] = {
            "type": self.type,
            "dtype": self.dtype,
            "rows": self.rows,
            "null_count": self.null_count,
            "null_rate": round(self.null_rate, 6),
        }
        if self.values is not None:
            out["inf_count"] = self.inf_count
            out.update(_numeric_stats(self.values))
        if self.counts is not None:
            out["distinct"] = len(self.counts)
            out["top"] = [[str(v), int(c)] for v, c in self.counts.head(TOP_VALUES).items()]
        return out

    def stats(self) -> dict[str, Any]:
        """A copy of ``summary`` that the caller may extend."""
        return dict(self.summary)


def sorted_quantiles(values: np.ndarray, quantiles: Sequence[float] | np.ndarray) -> np.ndarray:
    """Quantiles of ascending ``values`` by index, with numpy's default linear interpolation."""
    position = np.asarray(quantiles, dtype="float64") * (len(values) - 1)
    low = np.floor(position).astype("int64")
    high = np.minimum(low + 1, len(values) - 1)
    return values[low] + (position - low) * (values[high] - values[low])  # type: ignore[no-any-return]


def _numeric_stats(values: np.ndarray) -> dict[str, float | None]:
    """min, max, mean, std and the QUANTILES (p01 ... p99); all None without values."""
    names = ["min", "max", "mean", "std"] + [f"p{round(q * 100):02d}" for q in QUANTILES]
    if not len(values):
        return dict.fromkeys(names)
    moments = [values[0], values[-1], values.mean(), values.std()]
    numbers = [*moments, *sorted_quantiles(values, QUANTILES)]
    return {name: float(v) for name, v in zip(names, numbers, strict=True)}


def storage_type(series: pd.Series) -> str:
    """The physical kind of a column: integer, float, boolean, datetime, string or other."""
    api = pd.api.types
    for kind, test in (
        ("boolean", api.is_bool_dtype),
        ("integer", api.is_integer_dtype),
        ("float", api.is_float_dtype),
        ("datetime", api.is_datetime64_any_dtype),
        ("string", api.is_string_dtype),
    ):
        if test(series):
            return kind
    return "other"


def profile_column(name: str, series: pd.Series) -> ColumnProfile:
    """The profile of one column (vectorised: one pass of numpy or one value_counts)."""
    kind = logical_type(series)
    nulls = int(series.isna().sum())
    if kind == "numeric":
        numbers = series.to_numpy("float64", na_value=np.nan)
        infinite = np.isinf(numbers)
        finite = np.sort(numbers[np.isfinite(numbers)])
        return ColumnProfile(
            name, kind, storage_type(series), len(series), nulls, int(infinite.sum()), finite, None
        )
    counts = series.dropna().astype("string").value_counts(sort=False)
    # Most frequent first, ties by value, so reports and schemas are deterministic.
    labels = counts.index.to_numpy(dtype=object).astype(str)
    counts = counts.iloc[np.lexsort((labels, -counts.to_numpy()))].astype("int64")
    return ColumnProfile(name, kind, storage_type(series), len(series), nulls, 0, None, counts)


def profile_frame(frame: pd.DataFrame) -> dict[str, ColumnProfile]:
    """Profiles of every column, by column name (as a string)."""
    return {str(name): profile_column(str(name), frame[name]) for name in frame.columns}
