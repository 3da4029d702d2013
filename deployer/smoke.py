"""The smoke test a model version passes before ``champion`` moves to it: load it the way
serving will (pyfunc, no pickle), once every file of it matched the sha256 recorded when it was
logged, and predict raw sample rows. What a sane output is follows from what the model's output
signature promises: class probabilities (``proba_*`` columns beside ``prediction``) that sum to
1, or (regression) one finite number per row in ``prediction``."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pandas as pd

from common import dataset, tables
from common.metrics import checked_predictions, checked_probabilities
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


PROBABILITY_PREFIX = "proba_"  # tabular_model.serving.probability_column
Output = Literal["probabilities", "values"]


def probability_columns(names: Any) -> list[Any]:
    return [name for name in names if str(name).startswith(PROBABILITY_PREFIX)]


def promised_output(model: Any) -> Output | None:
    """What the model's output signature says ``predict`` returns: class probabilities
    (``proba_*`` columns) or one number per row (``prediction`` alone); None without an output
    signature."""
    schema = model.metadata.get_output_schema()
    if schema is None:
        return None
    return "probabilities" if probability_columns(schema.input_names()) else "values"


def check_output(out: object, rows: int, promised: Output | None = None) -> None:
    """One ``prediction`` per row, and what ``promised`` says (without a signature: what the
    columns show): ``proba_*`` columns that are probabilities summing to 1, or a finite number
    in ``prediction`` for every row and no probability column."""
    if not isinstance(out, pd.DataFrame) or "prediction" not in out.columns:
        raise ValueError(f"expected a DataFrame with a 'prediction' column, got {type(out)}")
    if len(out) != rows:
        raise ValueError(f"{len(out)} predictions for {rows} rows")
    proba = probability_columns(out.columns)
    if (promised or ("probabilities" if proba else "values")) == "probabilities":
        if len(proba) < 2:
            raise ValueError("the probability columns are missing")
        checked_probabilities(out[proba])
        return
    if proba:
        raise ValueError(
            f"the model's signature promises one number per row, but it returned the "
            f"probability columns {proba}"
        )
    checked_predictions(out["prediction"])


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
        check_output(model.predict(sample), len(sample), promised_output(model))
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
