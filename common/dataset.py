"""The layout of a preprocess output folder, shared by its writer (``python -m preprocess``) and
its readers (trainer, evaluator)::

    <output>/train.parquet, val.parquet, test.parquet   encoded features + the encoded target
    <output>/raw/test.parquet, raw/sample.parquet       untransformed rows (evaluation, examples)
    <output>/transform.json                             the fitted TableTransform
    <output>/manifest.json                              written last: the output is complete

``manifest.json`` also records the input (URI and sha256 fingerprint), the split settings, the
row counts and the feature count, so later steps can tag models with the data they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from common import storage, tables
from common.step import StepError
from tabular_model.transform import TableTransform, TransformError

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
TRANSFORM = "transform.json"
TARGET_COLUMN = "__target__"


def split_uri(output: str, split: str) -> str:
    return storage.join_uri(output, f"{split}.parquet")


def raw_uri(output: str, name: str) -> str:
    return storage.join_uri(output, "raw", f"{name}.parquet")


def transform_uri(output: str) -> str:
    return storage.join_uri(output, TRANSFORM)


def manifest_uri(output: str) -> str:
    return storage.join_uri(output, MANIFEST)


@dataclass(frozen=True)
class EncodedSplit:
    """One split as contiguous arrays, ready to become tensors."""

    numeric: np.ndarray  # float32 [rows, numeric features]
    categorical: np.ndarray  # int64 [rows, categorical columns]
    target: np.ndarray  # int64 class codes [rows]; float32 standardised values for regression

    @property
    def rows(self) -> int:
        return int(self.target.shape[0])


def target_dtype(transform: TableTransform) -> str:
    """int64 class codes, or float32 standardised values for regression."""
    return "float32" if transform.is_regression else "int64"


def encoded_schema(transform: TableTransform) -> pa.Schema:
    """float32 numeric features, int32 categorical codes, then the target (``target_dtype``)."""
    fields = [pa.field(name, pa.float32()) for name in transform.numeric_feature_names]
    fields += [pa.field(col.name, pa.int32()) for col in transform.categorical]
    target = pa.from_numpy_dtype(np.dtype(target_dtype(transform)))
    return pa.schema([*fields, pa.field(TARGET_COLUMN, target)])


def encoded_table(transform: TableTransform, split: EncodedSplit) -> pa.Table:
    """The split as an Arrow table (column-major arrays are handed over without a copy)."""
    columns = [split.numeric[:, i] for i in range(split.numeric.shape[1])]
    columns += [split.categorical[:, i].astype(np.int32) for i in range(split.categorical.shape[1])]
    return pa.Table.from_arrays([*columns, split.target], schema=encoded_schema(transform))


def read_manifest(data_path: str) -> dict[str, Any]:
    """The manifest of a complete preprocess output; a missing one means an unfinished write."""
    uri = manifest_uri(data_path)
    try:
        return storage.read_json(uri)  # type: ignore[no-any-return]
    except StepError as exc:
        raise StepError(
            f"{data_path} is not a complete preprocess output ({MANIFEST} missing or unreadable: "
            f"{exc}); run `python -m preprocess --output {data_path}` first"
        ) from exc


def load_transform(data_path: str) -> TableTransform:
    read_manifest(data_path)
    try:
        return TableTransform.from_dict(storage.read_json(transform_uri(data_path)))
    except (KeyError, TypeError, TransformError) as exc:
        raise StepError(f"{transform_uri(data_path)} is not a valid transform: {exc}") from exc


def load_split(data_path: str, transform: TableTransform, split: str) -> EncodedSplit:
    """Read one encoded split; refuses an incomplete output, missing columns and NaN features."""
    read_manifest(data_path)
    uri = split_uri(data_path, split)
    frame = tables.read_table(uri)
    numeric_names = transform.numeric_feature_names
    categorical_names = [c.name for c in transform.categorical]
    missing = [c for c in [*numeric_names, *categorical_names, TARGET_COLUMN] if c not in frame]
    if missing:
        raise StepError(f"{uri} lacks column(s) {missing} named by its transform.json")
    numeric = frame[numeric_names].to_numpy("float32", copy=True)
    if not np.isfinite(numeric).all():
        bad = [c for c in numeric_names if not np.isfinite(frame[c].to_numpy("float64")).all()]
        raise StepError(f"{uri} has NaN or infinite values in feature column(s) {bad}")
    return EncodedSplit(
        numeric=np.ascontiguousarray(numeric),
        categorical=frame[categorical_names].to_numpy("int64", copy=True),
        target=frame[TARGET_COLUMN].to_numpy(target_dtype(transform), copy=True),
    )
