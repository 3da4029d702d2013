"""What the data holds, column by column: the profiles shared by the schema, the checks, the drift
comparison and the report. Pure data; ``validator.accumulate`` builds them from record batches.

Exact: row, null and infinite counts, min, max, category and label counts (up to
``CATEGORY_CAP`` distinct values per column). From a sample when a column has more finite values
than the sample holds: quantiles, histograms and drift bins (``values``), and the count of values
out of a schema's range; the mean and std are then merged batch by batch. A column whose values
all fit in the sample is described exactly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from tabular_model.transform import LogicalType

QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
TOP_VALUES = 10  # most frequent values listed per categorical column in the report
LabelKind = Literal["numeric", "boolean", "text"]


@dataclass(frozen=True)
class NumberSummary:
    """The finite values of a numeric column: how many, and their min, max, mean and (population)
    standard deviation; all exact."""

    count: int
    minimum: float
    maximum: float
    mean: float
    std: float


@dataclass(frozen=True)
class ColumnProfile:
    """What one column holds. Numeric columns: ``values``, finite numbers sorted ascending (all
    of them, or a uniform sample when ``numbers.count`` is larger: see ``sampled``), and
    ``numbers``. Categorical columns: ``counts``, the value counts of the non-null values as
    strings, most frequent first; ``untracked`` values (those first seen after the column had
    ``CATEGORY_CAP`` distinct values) are in no count."""

    name: str
    type: LogicalType
    dtype: str
    rows: int
    null_count: int
    inf_count: int
    values: np.ndarray | None
    counts: pd.Series | None
    numbers: NumberSummary | None = None
    untracked: int = 0

    @property
    def null_rate(self) -> float:
        return self.null_count / self.rows if self.rows else 0.0

    @property
    def present(self) -> int:
        """Rows with a value (not null; numeric columns: finite or infinite)."""
        return self.rows - self.null_count

    @property
    def sampled(self) -> bool:
        """Whether ``values`` is a sample rather than every finite value."""
        return (
            self.values is not None
            and self.numbers is not None
            and (self.numbers.count > len(self.values))
        )

    @cached_property
    def summary(self) -> dict[str, Any]:
        """JSON-safe statistics for the report (no NaN: absent values are None); computed once,
        treat as read-only (``stats()`` gives a copy). Approximations are flagged:
        ``sample_size`` (quantiles from a sample) and ``untracked_values`` (category counts
        capped); neither key appears when the statistics are exact."""
        out: dict[str, Any] = {
            "type": self.type,
            "dtype": self.dtype,
            "rows": self.rows,
            "null_count": self.null_count,
            "null_rate": round(self.null_rate, 6),
        }
        if self.values is not None:
            out["inf_count"] = self.inf_count
            out.update(_numeric_stats(self.values, self.numbers))
            if self.sampled:
                out["sample_size"] = len(self.values)
        if self.counts is not None:
            out["distinct"] = len(self.counts)
            out["top"] = [[str(v), int(c)] for v, c in self.counts.head(TOP_VALUES).items()]
            if self.untracked:
                out["untracked_values"] = self.untracked
        return out

    def stats(self) -> dict[str, Any]:
        """A copy of ``summary`` that the caller may extend."""
        return dict(self.summary)


@dataclass(frozen=True)
class KeyProfile:
    """A declared key (one or more columns): the columns the data lacks, rows with a null key
    part, rows repeating an earlier row's key, and up to a few repeated keys as examples."""

    columns: tuple[str, ...]
    missing: tuple[str, ...] = ()
    null_rows: int = 0
    duplicate_rows: int = 0
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableProfile:
    """The whole input: its rows, each column's profile (by name, in input order), the target's
    label counts by text (None: no such column), the declared key (None: no --key) and the
    target's distinct values as pandas holds them (``label_values``; None: no such column),
    which decide its task."""

    rows: int
    columns: dict[str, ColumnProfile]
    labels: dict[str, int] | None = None
    keys: KeyProfile | None = None
    target_values: pd.Series | None = None


def sorted_quantiles(values: np.ndarray, quantiles: Sequence[float] | np.ndarray) -> np.ndarray:
    """Quantiles of ascending ``values`` by index, with numpy's default linear interpolation."""
    position = np.asarray(quantiles, dtype="float64") * (len(values) - 1)
    low = np.floor(position).astype("int64")
    high = np.minimum(low + 1, len(values) - 1)
    return values[low] + (position - low) * (values[high] - values[low])  # type: ignore[no-any-return]


def exact_summary(values: np.ndarray) -> NumberSummary | None:
    """The summary of every finite value of a column, sorted ascending (None: no values)."""
    if not len(values):
        return None
    return NumberSummary(
        len(values), float(values[0]), float(values[-1]), float(values.mean()), float(values.std())
    )


def _numeric_stats(values: np.ndarray, numbers: NumberSummary | None) -> dict[str, float | None]:
    """min, max, mean, std and the QUANTILES (p01 ... p99); all None without values."""
    names = ["min", "max", "mean", "std"] + [f"p{round(q * 100):02d}" for q in QUANTILES]
    if numbers is None or not len(values):
        return dict.fromkeys(names)
    moments = [numbers.minimum, numbers.maximum, numbers.mean, numbers.std]
    figures = [*moments, *sorted_quantiles(values, QUANTILES)]
    return {name: float(v) for name, v in zip(names, figures, strict=True)}


def class_shares(labels: dict[str, int]) -> dict[str, float]:
    """Share of the labelled rows of each label (as text), by label."""
    total = sum(labels.values())
    return {k: round(labels[k] / total, 6) for k in sorted(labels)} if total else {}


def label_values(labels: Iterable[str], kind: LabelKind) -> pd.Series:
    """The distinct values of a target from their text forms (``labels``), in the type pandas
    reads the column as: float64 numbers, booleans, or text. The task rule
    (``common.task.infer_task``) and the checks of a regression target depend only on the
    distinct values and this type, so the counts the profile keeps are enough to apply them
    to data never held whole. Text that is no number (a NaN's text form) is a missing value."""
    text = pd.Series(list(labels), dtype=object)
    if kind == "numeric":
        return pd.to_numeric(text, errors="coerce").astype("float64")
    if kind == "boolean":
        return (text == "True").astype(bool)
    return text
