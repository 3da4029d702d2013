"""The served model: it loads the fitted transform (JSON), the network config (JSON) and the
weights (safetensors) from the model's artifacts, takes raw rows and returns the original labels
plus one probability column per class. No pickle is involved: MLflow loads it from code
(``tabular_model/served_model.py``). The sha256 of every artifact, recorded in the model's config
when it was logged, is checked before anything is read from it.

Rows it cannot score are refused, never guessed at: a missing column, a value of a numeric column
that is not a number (text such as ``"abc"``, a boolean, a list) or is not finite (``inf``, or a
number beyond the float64 range), a list or a mapping in a categorical column. The refusal is an
``MlflowException`` with ``INVALID_PARAMETER_VALUE`` naming the column, which MLflow's scoring
server answers with HTTP 400 and that message. Missing values (null, NaN) stay allowed: the model
encodes them. Columns the model does not use are ignored with one warning per call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import reprlib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from safetensors.torch import load_file

from tabular_model.network import (
    NetworkConfig,
    TabularMLP,
    as_tensors,
    predict_proba,
    predict_values,
)
from tabular_model.transform import (
    CategoricalColumn,
    TableTransform,
    decode_target,
    encode_features,
)

log = logging.getLogger(__name__)

WEIGHTS = "weights"
NETWORK = "network"
TRANSFORM = "transform"
ARTIFACTS = (WEIGHTS, NETWORK, TRANSFORM)
CHECKSUMS = "sha256"  # the model_config key holding {artifact name: hex digest}


class ArtifactIntegrityError(ValueError):
    """A model artifact is missing from the checksums or differs from what was logged."""


def probability_column(label: Any) -> str:
    return f"proba_{label}"


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_checksums(artifacts: Mapping[str, str]) -> dict[str, str]:
    """{artifact name: sha256 hex} of the model's artifact files (recorded at logging time)."""
    return {name: sha256_of(artifacts[name]) for name in ARTIFACTS}


def verify_artifacts(artifacts: Mapping[str, str], model_config: Mapping[str, Any] | None) -> None:
    """Refuse to load when an artifact's bytes differ from the sha256 recorded at logging time,
    or when no checksum was recorded for it (ArtifactIntegrityError naming the file)."""
    expected = (model_config or {}).get(CHECKSUMS) or {}
    for name in ARTIFACTS:
        path = artifacts[name]
        if name not in expected:
            raise ArtifactIntegrityError(
                f"model artifact {name!r} ({Path(path).name}) has no recorded sha256; "
                "refusing to load a model logged without checksums"
            )
        actual = sha256_of(path)
        if actual != expected[name]:
            raise ArtifactIntegrityError(
                f"model artifact {name!r} ({Path(path).name}) has sha256 {actual}, but "
                f"{expected[name]} was recorded when the model was logged: the file was "
                "changed; refusing to load it"
            )


class NonFiniteOutputError(FloatingPointError):
    """The network produced NaN or infinite probabilities (its weights are broken, since its
    inputs are finite): the call fails rather than return them."""


NUMBER_ADVICE = "give a number, or null for a missing value"
CATEGORY_ADVICE = "give one value (text), or null for a missing value"


def invalid_input(message: str) -> MlflowException:
    """The refusal of rows the model cannot score: HTTP 400 with ``message`` when served."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def refuse(column: str, bad: np.ndarray, problem: str, series: pd.Series, advice: str) -> None:
    """Refuse the column when any value is ``bad``: how many, and the first one (by position)."""
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        shown = reprlib.repr(series.iloc[first])  # a 400-digit integer is shortened
        raise invalid_input(
            f"column {column!r}: {int(bad.sum())} of {len(bad)} value(s) {problem} "
            f"(first: row {first}, {shown}); {advice}"
        )


def is_missing(value: Any) -> bool:
    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


def number_of(value: Any) -> float:
    """One value of a numeric column as a float (NaN: missing). ValueError: not a number (text
    that is not one, a boolean, a list or mapping, a date); OverflowError: an integer beyond the
    float64 range. Numeric text is read as the number it spells."""
    if is_missing(value):
        return float("nan")
    if isinstance(value, (bool, np.bool_)):
        raise ValueError("a boolean is not a number")
    if isinstance(value, str) and "_" not in value:  # float() alone would read "1_000"
        return float(value)
    if isinstance(value, (numbers.Real, Decimal)):
        return float(value)
    raise ValueError(f"{type(value).__name__} is not a number")


def checked_numbers(column: str, series: pd.Series) -> np.ndarray:
    """float64 values of a numeric column (NaN: missing); refuses values that are not numbers or
    not finite. Integer and float columns of any width convert in one step; other columns (text,
    mixed objects from JSON) value by value."""
    kind = series.dtype.kind
    if kind in "iuf":
        values: np.ndarray = series.to_numpy("float64", na_value=np.nan)
    elif kind == "O":
        values = np.empty(len(series), dtype=np.float64)
        not_number = np.zeros(len(series), dtype=bool)
        for i, value in enumerate(series.to_numpy(dtype=object)):
            try:
                values[i] = number_of(value)
            except OverflowError:
                values[i] = np.inf  # refused below, as beyond the float64 range
            except (ValueError, TypeError):
                not_number[i] = True
        refuse(column, not_number, "are not numbers", series, NUMBER_ADVICE)
    else:  # booleans, complex numbers, dates, durations
        refuse(column, series.notna().to_numpy(), "are not numbers", series, NUMBER_ADVICE)
        values = np.full(len(series), np.nan)
    refuse(
        column, np.isinf(values), "are not finite (inf, or beyond the float64 range)", series,
        NUMBER_ADVICE,
    )  # fmt: skip
    return values


def category_text(value: Any, vocabulary: frozenset[str]) -> str | None:
    """One value of a categorical column as the text the transform compares (None: missing).
    A whole number that arrived as a float (JSON integers in a column with missing values do)
    takes its integer text when that is what training saw (``3.0`` → ``"3"``)."""
    if is_missing(value):
        return None
    if not pd.api.types.is_scalar(value):
        raise ValueError(f"{type(value).__name__} is not a single value")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        whole = str(int(value))
        if str(value) not in vocabulary and whole in vocabulary:
            return whole
    return str(value)


def checked_categories(column: CategoricalColumn, series: pd.Series) -> pd.Series:
    """A categorical column as the transform takes it: text, dictionary (pandas ``category``),
    booleans and integers pass as they are (the transform compares their text); floats and mixed
    objects are turned into text value by value, refusing lists and mappings."""
    if series.dtype.kind != "f" and not pd.api.types.is_object_dtype(series.dtype):
        return series
    vocabulary = frozenset(column.vocabulary)
    texts: list[str | None] = []
    not_single = np.zeros(len(series), dtype=bool)
    for i, value in enumerate(series.to_numpy(dtype=object)):
        try:
            texts.append(category_text(value, vocabulary))
        except ValueError:
            texts.append(None)
            not_single[i] = True
    refuse(column.name, not_single, "are not single values", series, CATEGORY_ADVICE)
    return pd.Series(texts, index=series.index, dtype=object)


def checked_rows(transform: TableTransform, frame: Any) -> pd.DataFrame:
    """The model's input columns of ``frame``, checked: a missing column or a value the model
    cannot score is refused (``invalid_input`` naming the column); other columns are ignored,
    with one warning."""
    if not isinstance(frame, pd.DataFrame):
        raise invalid_input(f"expected a table of rows (a pandas DataFrame), got {type(frame)}")
    missing = [c for c in transform.input_columns if c not in frame.columns]
    if missing:
        raise invalid_input(
            f"input is missing column(s) {missing}; the model needs {transform.input_columns}"
        )
    extra = [str(c) for c in frame.columns if c not in set(transform.input_columns)]
    if extra:
        log.warning("ignoring %d input column(s) the model does not use: %s", len(extra), extra)
    columns: dict[str, Any] = {
        c.name: checked_numbers(c.name, frame[c.name]) for c in transform.numeric
    }
    for cat in transform.categorical:
        columns[cat.name] = checked_categories(cat, frame[cat.name])
    return pd.DataFrame(columns, index=frame.index)


def check_finite(outputs: np.ndarray, what: str = "probabilities") -> None:
    """Refuse NaN or infinite ``outputs`` [rows, ...] (the inputs were checked finite)."""
    bad = ~np.isfinite(outputs)
    if bad.ndim > 1:
        bad = bad.any(axis=tuple(range(1, bad.ndim)))
    if bad.any():
        raise NonFiniteOutputError(
            f"the network produced NaN or infinite {what} for {int(bad.sum())} of "
            f"{len(bad)} row(s) (first: row {int(np.flatnonzero(bad)[0])}) although its inputs "
            "are finite: its weights are broken; nothing is returned"
        )


class TabularClassifier(PythonModel):  # type: ignore[misc]
    """Raw rows (the input columns, without the target) → prediction + per-class probabilities."""

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        verify_artifacts(artifacts, getattr(context, "model_config", None))
        self.transform = TableTransform.from_dict(
            json.loads(Path(artifacts[TRANSFORM]).read_text())
        )
        config = NetworkConfig.from_dict(json.loads(Path(artifacts[NETWORK]).read_text()))
        self.net = TabularMLP(config)
        self.net.load_state_dict(load_file(artifacts[WEIGHTS]))
        self.net.eval()

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        """Raw rows → ``prediction`` and ``proba_<label>`` per class (regression: ``prediction``
        alone, a float in the target's units), one row per input row (none for none).
        MlflowException (INVALID_PARAMETER_VALUE) naming the column for rows it cannot score;
        NonFiniteOutputError when the network produced NaN or infinity."""
        features = encode_features(self.transform, checked_rows(self.transform, model_input))
        numeric, categorical = as_tensors(
            features.numeric, features.categorical, torch.device("cpu")
        )
        if self.transform.target_scaling is not None:
            standardised = predict_values(self.net, numeric, categorical).numpy()
            with np.errstate(over="ignore"):  # an overflow is refused just below
                values = self.transform.target_scaling.unscale(standardised)
            check_finite(values, "predictions")
            return pd.DataFrame({"prediction": values})
        probabilities = predict_proba(self.net, numeric, categorical).numpy()
        check_finite(probabilities)
        labels = pd.Series(list(self.transform.classes)).dtype
        predicted = decode_target(self.transform, probabilities.argmax(1))
        out = pd.DataFrame({"prediction": pd.Series(predicted, dtype=labels)})
        for i, label in enumerate(self.transform.classes):
            out[probability_column(label)] = probabilities[:, i]
        return out
