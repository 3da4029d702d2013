"""The fitted transform and the one function that applies it, used both by preprocessing and by
the served model (``tabular_model.serving``), so a row is encoded the same way in training and
serving.

- numeric columns: scaled (``standard``: mean/std, ``robust``: median/IQR, ``quantile``: the
  train CDF mapped to [-1, 1]); a missing value encodes as 0 and, when train had missing values,
  sets a ``<name>__missing`` indicator feature;
- categorical columns (as fitted by ``preprocess.fit``): code 0 = missing, code 1 = other (a value
  unseen in train or seen fewer than ``min_frequency`` times, so the "other" embedding is trained
  on the rare values), codes 2.. = the vocabulary, most frequent first. Values are compared by
  their pandas text form (``astype("string")``), whatever their type.

The target: class codes in the order of ``classes`` (classification), or for regression
(version 3) the number standardised by ``TargetScaling``, optionally after ``log1p``, which the
served model inverts so predictions come back in the target's units.

Stored as JSON (no pickle). Version 1 files (standard scaling, code 0 for missing and unseen
values, vocabulary from code 1) still load and encode exactly as they did. A classification
transform is still written as version 2, which every reader since then takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from tabular_model.model_config import SCALINGS as SCALINGS
from tabular_model.model_config import Scaling as Scaling

Label = str | int | float | bool
LogicalType = Literal["numeric", "categorical"]
Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")
MISSING_CODE = 0  # categorical code of a missing value
OTHER_CODE = 1  # categorical code of an unseen or infrequent value (version 2)
UNKNOWN_CODE = MISSING_CODE  # version 1: missing and unseen values shared code 0
TRANSFORM_VERSION = 3  # written for regression; classification writes CLASSIFICATION_VERSION
CLASSIFICATION_VERSION = 2
READABLE_VERSIONS = (1, 2, 3)


class TransformError(ValueError):
    """Data the transform cannot encode (missing column, unseen label) or an invalid transform."""


def logical_type(series: pd.Series) -> LogicalType:
    """Numbers (not booleans) are numeric; everything else is categorical."""
    is_number = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    return "numeric" if is_number else "categorical"


def as_label(value: Any) -> Label:
    """A JSON-safe Python scalar for a label value (numpy scalars become int/float/bool)."""
    return value.item() if isinstance(value, np.generic) else value  # type: ignore[no-any-return]


@dataclass(frozen=True)
class NumericColumn:
    """``(x - center) / scale``, or for ``quantile`` the position of x among ``quantiles``."""

    name: str
    center: float
    scale: float
    missing_indicator: bool
    scaling: Scaling = "standard"
    quantiles: tuple[float, ...] = ()

    def encode(self, values: np.ndarray) -> np.ndarray:
        """float64 values (NaN = missing) → scaled float64, missing → 0."""
        if self.scaling == "quantile":
            scaled = 2.0 * quantile_cdf(values, np.asarray(self.quantiles)) - 1.0
        else:
            scaled = values - self.center
            scaled /= self.scale
        scaled[np.isnan(values)] = 0.0
        return scaled


def quantile_cdf(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """The train CDF at ``values`` by linear interpolation between evenly spaced quantiles.
    Repeated quantiles (a value held by many rows) map to the middle of their range: averaging
    the interpolation from both ends, as scikit-learn's QuantileTransformer does."""
    references = np.linspace(0.0, 1.0, len(quantiles))
    forward = np.interp(values, quantiles, references)
    backward = np.interp(-values, -quantiles[::-1], -references[::-1])
    return 0.5 * (forward - backward)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CategoricalColumn:
    """Codes: 0 missing, then (with ``other_code``) 1 for unseen or infrequent values, then the
    vocabulary. Without ``other_code`` (version 1 files) unseen values share code 0."""

    name: str
    vocabulary: tuple[str, ...]
    other_code: bool = False

    @property
    def offset(self) -> int:
        return 2 if self.other_code else 1

    @property
    def cardinality(self) -> int:
        """Number of codes, including the missing (and other) codes."""
        return len(self.vocabulary) + self.offset

    @cached_property
    def index(self) -> pd.Index:
        return pd.Index(self.vocabulary, dtype="string")

    def encode(self, series: pd.Series) -> np.ndarray:
        """Values → int64 codes, compared as text (so 1, "1" and 1.0 differ only as text does).
        A dictionary (categorical) column is looked up once per distinct value."""
        if isinstance(series.dtype, pd.CategoricalDtype):
            per_category = np.append(self._codes(series.cat.categories), MISSING_CODE)
            return per_category[series.cat.codes.to_numpy()]  # code -1 (missing): the last
        codes = self._codes(series)
        codes[series.isna().to_numpy()] = MISSING_CODE
        return codes

    def _codes(self, values: pd.Series | pd.Index) -> np.ndarray:
        positions = self.index.get_indexer(values.astype("string"))
        unseen = OTHER_CODE if self.other_code else UNKNOWN_CODE
        return np.where(positions >= 0, positions + self.offset, unseen).astype(np.int64)  # type: ignore[no-any-return]


def lookup(index: pd.Index, series: pd.Series) -> np.ndarray:
    """Position of each value of ``series`` in ``index`` (-1: missing or not there); a
    categorical column is looked up once per distinct value."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        found = np.append(index.get_indexer(series.cat.categories), -1)
        return found[series.cat.codes.to_numpy()]  # type: ignore[no-any-return]
    return index.get_indexer(series)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class TargetScaling:
    """A regression target as the network learns it: ``(y - center) / scale``, of ``log1p(y)``
    when ``log`` (a positive, skewed target); fitted on the train rows only."""

    center: float
    scale: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center) and math.isfinite(self.scale) and self.scale > 0):
            raise TransformError(
                f"invalid target scaling: center {self.center}, scale {self.scale} (the scale "
                "must be a positive number)"
            )

    def scale_values(self, values: np.ndarray) -> np.ndarray:
        """Target units (float64) → standardised float32."""
        values = np.asarray(values, dtype=np.float64)
        if self.log:
            values = np.log1p(values)
        return ((values - self.center) / self.scale).astype(np.float32)

    def unscale(self, standardised: np.ndarray) -> np.ndarray:
        """Standardised values → float64 in the target's units."""
        values = np.asarray(standardised, dtype=np.float64) * self.scale + self.center
        return np.expm1(values) if self.log else values

    def to_dict(self) -> dict[str, Any]:
        return {"center": self.center, "scale": self.scale, "log": self.log}


@dataclass(frozen=True)
class EncodedFeatures:
    """Column-major arrays (``np.ascontiguousarray`` gives row-major ones)."""

    numeric: np.ndarray  # float32 [rows, numeric_feature_count]
    categorical: np.ndarray  # int64 [rows, categorical columns]


@dataclass(frozen=True)
class TableTransform:
    """``classes`` (classification, at least two) or ``target_scaling`` (regression, with no
    classes): exactly one of them, as ``task`` says."""

    target: str
    classes: tuple[Label, ...]
    numeric: tuple[NumericColumn, ...]
    categorical: tuple[CategoricalColumn, ...]
    task: Task = "classification"
    target_scaling: TargetScaling | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise TransformError(f"task {self.task!r} is not one of {list(TASKS)}")
        if self.is_regression != (self.target_scaling is not None):
            raise TransformError("a regression transform, and only one, has a target scaling")
        if self.is_regression and self.classes:
            raise TransformError("a regression transform has no classes")

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

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

    @property
    def version(self) -> int:
        return TRANSFORM_VERSION if self.is_regression else CLASSIFICATION_VERSION

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "target": self.target,
            "classes": list(self.classes),
            "numeric": [numeric_to_dict(c) for c in self.numeric],
            "categorical": [
                {"name": c.name, "other_code": c.other_code, "vocabulary": list(c.vocabulary)}
                for c in self.categorical
            ],
        }
        if self.target_scaling is not None:
            out["task"] = self.task
            out["target_scaling"] = self.target_scaling.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableTransform:
        """Reads versions 1 to 3 (1 and 2 are classification); anything else is a
        TransformError."""
        version = data.get("version")
        if version not in READABLE_VERSIONS:
            raise TransformError(
                f"unsupported transform version {version!r} (this code reads versions "
                f"{list(READABLE_VERSIONS)}); rerun `python -m preprocess` to refit it"
            )
        v1 = version == 1
        v3 = version == TRANSFORM_VERSION  # the task, and a regression target's scaling
        scaling = data.get("target_scaling") if v3 else None
        return cls(
            target=data["target"],
            classes=tuple(data["classes"]),
            task=data["task"] if v3 else "classification",
            target_scaling=None
            if scaling is None
            else TargetScaling(
                float(scaling["center"]), float(scaling["scale"]), bool(scaling["log"])
            ),
            numeric=tuple(numeric_from_dict(c, v1) for c in data["numeric"]),
            categorical=tuple(
                CategoricalColumn(c["name"], tuple(c["vocabulary"]), not v1 and c["other_code"])
                for c in data["categorical"]
            ),
        )


def numeric_to_dict(column: NumericColumn) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": column.name,
        "scaling": column.scaling,
        "center": column.center,
        "scale": column.scale,
        "missing_indicator": column.missing_indicator,
    }
    if column.scaling == "quantile":
        out["quantiles"] = list(column.quantiles)
    return out


def numeric_from_dict(data: dict[str, Any], v1: bool) -> NumericColumn:
    if v1:  # version 1 stored the standard scaling as mean/std
        return NumericColumn(data["name"], data["mean"], data["std"], data["missing_indicator"])
    scaling = data["scaling"]
    if scaling not in SCALINGS:
        raise TransformError(f"column {data['name']!r}: unknown scaling {scaling!r}")
    quantiles = tuple(data.get("quantiles", ()))
    if scaling == "quantile" and len(quantiles) < 2:
        raise TransformError(f"column {data['name']!r}: quantile scaling needs quantiles")
    if not data["scale"] > 0:
        raise TransformError(f"column {data['name']!r}: scale must be positive")
    return NumericColumn(
        data["name"],
        data["center"],
        data["scale"],
        data["missing_indicator"],
        scaling,
        quantiles,
    )


FEATURE_LIMIT = 1e6  # the largest scaled numeric feature, in scales from the training center


def numeric_values(series: pd.Series) -> np.ndarray:
    """float64 values of a numeric column; text that is not a number counts as missing."""
    if series.dtype == np.float64:  # already numbers, NaN for missing: no conversion, no copy
        return series.to_numpy()  # type: ignore[no-any-return]
    return pd.to_numeric(series, errors="coerce").to_numpy("float64", na_value=np.nan)  # type: ignore[no-any-return]


def encode_features(transform: TableTransform, frame: pd.DataFrame) -> EncodedFeatures:
    """Encode raw rows: scaled numerics (+ indicators) and categorical codes. The served model
    and ``python -m preprocess`` both call this function."""
    missing = [c for c in transform.input_columns if c not in frame.columns]
    if missing:
        raise TransformError(f"input is missing column(s) {missing}")
    rows = len(frame)
    # Column-major: each feature is written (and later handed to Arrow) as one contiguous run.
    numeric = np.empty((len(transform.numeric_feature_names), rows), dtype=np.float32).T
    indicator = len(transform.numeric)
    for i, col in enumerate(transform.numeric):
        values = numeric_values(frame[col.name])
        if infinite := int(np.isinf(values).sum()):
            raise TransformError(
                f"column {col.name!r} has {infinite} infinite value(s); give a finite number, "
                "or leave the value missing"
            )
        # A value millions of scales from the training data (or a column whose train values
        # were almost equal) must not overflow float32 into inf: it is held at the limit.
        numeric[:, i] = np.clip(col.encode(values), -FEATURE_LIMIT, FEATURE_LIMIT)
        if col.missing_indicator:
            numeric[:, indicator] = np.isnan(values)
            indicator += 1
    categorical = np.empty((len(transform.categorical), rows), dtype=np.int64).T
    for i, cat in enumerate(transform.categorical):
        categorical[:, i] = cat.encode(frame[cat.name])
    return EncodedFeatures(numeric=numeric, categorical=categorical)


def encode_target(transform: TableTransform, labels: pd.Series) -> np.ndarray:
    """Class indices (int64) in the order of ``transform.classes``, unseen labels an error; for
    regression the standardised values (float32), a value that is not a finite number an
    error."""
    if transform.target_scaling is not None:
        return encode_regression_target(transform.target, transform.target_scaling, labels)
    codes = lookup(pd.Index(list(transform.classes), dtype=object), labels)
    if (codes < 0).any():
        unseen = sorted({str(v) for v in labels[codes < 0].unique()})[:10]
        raise TransformError(
            f"target {transform.target!r} has labels not in {list(transform.classes)}: {unseen}"
        )
    return codes.astype(np.int64)  # type: ignore[no-any-return]


def encode_regression_target(target: str, scaling: TargetScaling, values: pd.Series) -> np.ndarray:
    is_number = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not is_number:
        raise TransformError(
            f"regression target {target!r} holds {values.dtype} values, not numbers"
        )
    numbers = values.to_numpy("float64", na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if scaling.log:
        bad |= numbers <= -1
    if bad.any():
        raise TransformError(
            f"regression target {target!r} has {int(bad.sum())} value(s) it cannot learn from "
            f"(missing, infinite{', or <= -1 for its log scaling' if scaling.log else ''}; "
            f"first: {values.iloc[int(np.flatnonzero(bad)[0])]!r})"
        )
    return scaling.scale_values(numbers)


def decode_target(transform: TableTransform, codes: np.ndarray) -> list[Label]:
    return [transform.classes[int(i)] for i in codes]
