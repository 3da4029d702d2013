"""The fitted transform: numeric standardisation with missing-value indicators and categorical
vocabularies, fitted on train only, stored as JSON (no pickle), and applied by the same code in
preprocessing and in the served model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Label = str | int | float | bool
LogicalType = Literal["numeric", "categorical"]
UNKNOWN_CODE = 0  # categorical code for a missing or out-of-vocabulary value
TRANSFORM_VERSION = 1


class TransformError(ValueError):
    """Data the transform cannot encode (missing column, unseen label)."""


def logical_type(series: pd.Series) -> LogicalType:
    """Numbers (not booleans) are numeric; everything else is categorical."""
    is_number = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    return "numeric" if is_number else "categorical"


def as_label(value: Any) -> Label:
    """A JSON-safe Python scalar for a label value (numpy scalars become int/float/bool)."""
    return value.item() if isinstance(value, np.generic) else value  # type: ignore[no-any-return]


@dataclass(frozen=True)
class NumericColumn:
    name: str
    mean: float
    std: float
    missing_indicator: bool


@dataclass(frozen=True)
class CategoricalColumn:
    name: str
    vocabulary: tuple[str, ...]

    @property
    def cardinality(self) -> int:
        """Number of codes including the unknown code 0."""
        return len(self.vocabulary) + 1


@dataclass(frozen=True)
class EncodedFeatures:
    numeric: np.ndarray  # float32 [rows, numeric_feature_count]
    categorical: np.ndarray  # int64 [rows, categorical columns]


@dataclass(frozen=True)
class TableTransform:
    target: str
    classes: tuple[Label, ...]
    numeric: tuple[NumericColumn, ...]
    categorical: tuple[CategoricalColumn, ...]

    @property
    def input_columns(self) -> list[str]:
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def numeric_feature_names(self) -> list[str]:
        names = [c.name for c in self.numeric]
        return names + [f"{c.name}__missing" for c in self.numeric if c.missing_indicator]

    @property
    def feature_count(self) -> int:
        return len(self.numeric_feature_names) + len(self.categorical)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": TRANSFORM_VERSION,
            "target": self.target,
            "classes": list(self.classes),
            "numeric": [asdict(c) for c in self.numeric],
            "categorical": [
                {"name": c.name, "vocabulary": list(c.vocabulary)} for c in self.categorical
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableTransform:
        if data.get("version") != TRANSFORM_VERSION:
            raise TransformError(f"unsupported transform version {data.get('version')!r}")
        return cls(
            target=data["target"],
            classes=tuple(data["classes"]),
            numeric=tuple(NumericColumn(**c) for c in data["numeric"]),
            categorical=tuple(
                CategoricalColumn(c["name"], tuple(c["vocabulary"])) for c in data["categorical"]
            ),
        )


def fit_transform(train: pd.DataFrame, target: str, classes: tuple[Label, ...]) -> TableTransform:
    """Fit the transform on the training rows; ``classes`` fixes the label order."""
    numeric: list[NumericColumn] = []
    categorical: list[CategoricalColumn] = []
    for name in train.columns:
        if name == target:
            continue
        column = train[name]
        if logical_type(column) == "numeric":
            values = column.astype("float64")
            mean = float(values.mean()) if values.notna().any() else 0.0
            std = float(values.std(ddof=0)) if values.notna().sum() > 1 else 0.0
            numeric.append(
                NumericColumn(str(name), mean, std if std > 0 else 1.0, bool(values.isna().any()))
            )
        else:
            counts = column.dropna().astype("string").value_counts()
            # Most frequent first, ties by value, so the vocabulary is deterministic.
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            categorical.append(CategoricalColumn(str(name), tuple(str(v) for v, _ in ordered)))
    return TableTransform(target, classes, tuple(numeric), tuple(categorical))


def encode_features(transform: TableTransform, frame: pd.DataFrame) -> EncodedFeatures:
    """Encode raw rows: scaled numerics (+ indicators) and categorical codes (0 = unknown)."""
    missing = [c for c in transform.input_columns if c not in frame.columns]
    if missing:
        raise TransformError(f"input is missing column(s) {missing}")
    rows = len(frame)
    numeric_parts: list[np.ndarray] = []
    indicators: list[np.ndarray] = []
    for col in transform.numeric:
        values = pd.to_numeric(frame[col.name], errors="coerce").to_numpy(
            "float64", na_value=np.nan
        )
        is_missing = np.isnan(values)
        numeric_parts.append(np.where(is_missing, 0.0, (values - col.mean) / col.std))
        if col.missing_indicator:
            indicators.append(is_missing.astype("float64"))
    numeric = np.column_stack(numeric_parts + indicators) if numeric_parts else np.zeros((rows, 0))
    # get_indexer gives -1 for missing and out-of-vocabulary values; +1 maps them to code 0.
    codes = [
        pd.Index(col.vocabulary).get_indexer(frame[col.name].astype("string"))
        for col in transform.categorical
    ]
    categorical = (np.column_stack(codes).astype("int64") + 1) if codes else np.zeros((rows, 0))
    return EncodedFeatures(
        numeric=np.ascontiguousarray(numeric, dtype="float32"),
        categorical=np.ascontiguousarray(categorical, dtype="int64"),
    )


def encode_target(transform: TableTransform, labels: pd.Series) -> np.ndarray:
    """Class indices (int64) in the order of ``transform.classes``; unseen labels are an error."""
    index = {label: i for i, label in enumerate(transform.classes)}
    codes = labels.map(lambda v: index.get(as_label(v), -1)).to_numpy("int64")
    if (codes < 0).any():
        unseen = sorted({str(v) for v in labels[codes < 0].unique()})[:10]
        raise TransformError(
            f"target {transform.target!r} has labels not in {list(transform.classes)}: {unseen}"
        )
    return codes


def decode_target(transform: TableTransform, codes: np.ndarray) -> list[Label]:
    return [transform.classes[int(i)] for i in codes]
