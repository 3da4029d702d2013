"""Schema inference and data checks. Pure: frames and dicts in, anomalies out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from preprocess.transform import as_label, logical_type

SCHEMA_VERSION = 1
Severity = Literal["error", "warning"]
MAX_CATEGORIES = 1000  # larger vocabularies are not stored in the schema


@dataclass(frozen=True)
class Anomaly:
    column: str | None
    check: str
    severity: Severity
    expected: Any
    observed: Any
    description: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    min_rows: int = 10
    null_rate_tolerance: float = 0.1  # allowed rise of a column's null rate over the schema's


def infer_column(series: pd.Series) -> dict[str, Any]:
    kind = logical_type(series)
    spec: dict[str, Any] = {
        "type": kind,
        "null_rate": float(series.isna().mean()) if len(series) else 0.0,
    }
    if kind == "numeric":
        finite = series.astype("float64").replace([np.inf, -np.inf], np.nan).dropna()
        spec["min"] = float(finite.min()) if len(finite) else None
        spec["max"] = float(finite.max()) if len(finite) else None
    else:
        values = series.dropna().astype("string").unique()
        spec["categories"] = sorted(map(str, values)) if len(values) <= MAX_CATEGORIES else None
    return spec


def infer_schema(frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """A schema of ``frame``: per-column type, null rate, range or categories; target classes."""
    classes = None
    if target in frame:
        classes = sorted({str(as_label(v)) for v in frame[target].dropna().unique()})
    return {
        "version": SCHEMA_VERSION,
        "target": target,
        "row_count": len(frame),
        "columns": {str(name): infer_column(frame[name]) for name in frame.columns},
        "classes": classes,
    }


def check_data(frame: pd.DataFrame, target: str, thresholds: Thresholds) -> list[Anomaly]:
    """Checks that need no schema: row count, target, all-null and infinite columns."""
    found: list[Anomaly] = []
    if len(frame) < thresholds.min_rows:
        found.append(
            Anomaly(
                None,
                "too_few_rows",
                "error",
                f">= {thresholds.min_rows}",
                len(frame),
                f"only {len(frame)} rows; at least {thresholds.min_rows} are needed",
            )
        )
    if target not in frame:
        found.append(
            Anomaly(
                target,
                "missing_target",
                "error",
                "present",
                "absent",
                f"target column {target!r} is missing; columns: {list(frame.columns)[:30]}",
            )
        )
    else:
        labels = frame[target]
        if labels.isna().any():
            found.append(
                Anomaly(
                    target,
                    "null_target",
                    "error",
                    0,
                    int(labels.isna().sum()),
                    f"target {target!r} has {int(labels.isna().sum())} null labels",
                )
            )
        if labels.nunique(dropna=True) < 2:
            found.append(
                Anomaly(
                    target,
                    "single_class",
                    "error",
                    ">= 2 classes",
                    int(labels.nunique()),
                    f"target {target!r} needs at least two classes",
                )
            )
    for name in frame.columns:
        series = frame[name]
        if len(series) and series.isna().all():
            found.append(
                Anomaly(
                    str(name),
                    "all_null",
                    "error",
                    "some values",
                    "all null",
                    f"column {name!r} has no values at all",
                )
            )
        elif logical_type(series) == "numeric":
            infinite = int(np.isinf(series.astype("float64")).sum())
            if infinite:
                found.append(
                    Anomaly(
                        str(name),
                        "infinite_values",
                        "error",
                        0,
                        infinite,
                        f"column {name!r} has {infinite} infinite values",
                    )
                )
    return found


def check_against_schema(
    frame: pd.DataFrame, schema: dict[str, Any], thresholds: Thresholds
) -> list[Anomaly]:
    """Every difference between ``frame`` and ``schema``, not just the first."""
    found: list[Anomaly] = []
    expected: dict[str, dict[str, Any]] = schema["columns"]
    observed = {str(c): infer_column(frame[c]) for c in frame.columns}
    for name in expected.keys() - observed.keys():
        found.append(
            Anomaly(
                name,
                "missing_column",
                "error",
                "present",
                "absent",
                f"column {name!r} is in the schema but not in the data",
            )
        )
    for name in sorted(observed.keys() - expected.keys()):
        found.append(
            Anomaly(
                name,
                "new_column",
                "warning",
                "absent",
                "present",
                f"column {name!r} is not in the schema",
            )
        )
    for name in sorted(expected.keys() & observed.keys()):
        found.extend(_column_anomalies(name, expected[name], observed[name], thresholds))
    target = schema.get("target")
    if schema.get("classes") is not None and target in frame:
        seen = {str(as_label(v)) for v in frame[target].dropna().unique()}
        unseen = sorted(seen - set(schema["classes"]))
        if unseen:
            found.append(
                Anomaly(
                    target,
                    "unseen_labels",
                    "error",
                    schema["classes"],
                    unseen,
                    f"target {target!r} has labels the schema does not know: {unseen}",
                )
            )
    return sorted(found, key=lambda a: (a.severity, a.column or "", a.check))


def _column_anomalies(
    name: str, want: dict[str, Any], got: dict[str, Any], thresholds: Thresholds
) -> list[Anomaly]:
    if want["type"] != got["type"]:
        return [
            Anomaly(
                name,
                "type_changed",
                "error",
                want["type"],
                got["type"],
                f"column {name!r} was {want['type']}, is now {got['type']}",
            )
        ]
    found: list[Anomaly] = []
    if got["null_rate"] > want["null_rate"] + thresholds.null_rate_tolerance:
        found.append(
            Anomaly(
                name,
                "null_rate",
                "warning",
                round(want["null_rate"], 4),
                round(got["null_rate"], 4),
                f"column {name!r} is {got['null_rate']:.1%} null, schema "
                f"{want['null_rate']:.1%} (+{thresholds.null_rate_tolerance:.0%} allowed)",
            )
        )
    bounds = (want.get("min"), want.get("max"), got.get("min"), got.get("max"))
    if (
        want["type"] == "numeric"
        and None not in bounds
        and (got["min"] < want["min"] or got["max"] > want["max"])
    ):
        found.append(
            Anomaly(
                name,
                "out_of_range",
                "warning",
                [want["min"], want["max"]],
                [got["min"], got["max"]],
                f"column {name!r} has values outside the schema range",
            )
        )
    if want["type"] == "categorical" and want.get("categories") and got.get("categories"):
        new = sorted(set(got["categories"]) - set(want["categories"]))
        if new:
            found.append(
                Anomaly(
                    name,
                    "unseen_categories",
                    "warning",
                    len(want["categories"]),
                    new[:20],
                    f"column {name!r} has {len(new)} unseen categories",
                )
            )
    return found
