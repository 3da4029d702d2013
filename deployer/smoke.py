"""The smoke test a model version passes before ``champion`` moves to it: load it the way
serving will (pyfunc, no pickle), once every file of it matched the sha256 recorded when it was
logged, and predict raw sample rows."""

from __future__ import annotations

import logging

import pandas as pd

from common import dataset, tables
from common.metrics import checked_probabilities
from common.step import StepError
from common.tracking import configure_mlflow, first_line, is_unreachable
from tabular_model.integrity import ModelIntegrityError, load_verified_model

log = logging.getLogger(__name__)


class SmokeTestError(StepError):
    """The new version did not load or did not predict sane output; the alias stays."""


def sample_rows(data_path: str | None) -> pd.DataFrame | None:
    """The raw sample rows of a preprocess output (without the target), or None to use the
    model's own input example."""
    if data_path is None:
        return None
    data_path = data_path.rstrip("/")
    target = dataset.load_transform(data_path).target
    rows = tables.read_table(dataset.raw_uri(data_path, "sample"))
    if rows.empty:
        raise StepError(f"{dataset.raw_uri(data_path, 'sample')} has no rows")
    return rows.drop(columns=[target], errors="ignore")


def check_output(out: object, rows: int) -> None:
    """One ``prediction`` per row and ``proba_*`` columns that are probabilities summing to 1."""
    if not isinstance(out, pd.DataFrame) or "prediction" not in out.columns:
        raise ValueError(f"expected a DataFrame with a 'prediction' column, got {type(out)}")
    if len(out) != rows:
        raise ValueError(f"{len(out)} predictions for {rows} rows")
    proba = out[[c for c in out.columns if str(c).startswith("proba_")]]
    if proba.shape[1] < 2:
        raise ValueError("the probability columns are missing")
    checked_probabilities(proba)


def smoke_test(model_uri: str, rows: pd.DataFrame | None) -> int:
    """Load ``model_uri`` and predict ``rows`` (default: its input example); return the number
    of rows predicted. SmokeTestError names the model and what went wrong."""
    configure_mlflow()
    try:
        # Verified first: MLflow runs a model's code when it loads it.
        model = load_verified_model(model_uri)
        sample = model.input_example if rows is None else rows
        if sample is None or len(sample) == 0:
            raise ValueError("no sample rows: the model has no input example; pass --data-path")
        check_output(model.predict(sample), len(sample))
    except StepError:
        raise
    except ModelIntegrityError as exc:
        raise SmokeTestError(
            f"{model_uri} fails its integrity check, not loaded, champion not moved: "
            f"{first_line(exc)}"
        ) from exc
    except Exception as exc:
        if is_unreachable(exc):
            raise
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise SmokeTestError(
            f"smoke test of {model_uri} failed, champion not moved: {reason}"
        ) from exc
    log.info("smoke test of %s: %d rows predicted", model_uri, len(sample))
    return len(sample)
