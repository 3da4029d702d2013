"""Score a file with a registered model: read the input one batch at a time, predict each batch
with the verified model, write the kept input columns and the model's output (the prediction
and the class probabilities of a classifier; the predicted number of a regression model, which
must be finite) into one output file, then its manifest."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from mlflow.exceptions import MlflowException

from common import storage, tables
from common.metrics import UnusableOutputError, checked_predictions
from common.step import StepError, one_line
from common.tracking import first_line
from contract.results import ScoreResult
from scorer.config import ScoreConfig
from scorer.model import ResolvedModel, load_model, resolve_model
from scorer.output import file_sha256, table_writer, write_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    """What went into the output file."""

    rows: int
    batches: int
    columns: list[str]


def check_keep_columns(config: ScoreConfig, schema: pa.Schema) -> None:
    """Every --keep-columns column must be in the input."""
    missing = [c for c in config.keep_columns if c not in schema.names]
    if missing:
        raise StepError(
            f"{config.input_uri}: --keep-columns {missing} not found; its columns are "
            f"{schema.names}"
        )


def model_columns(model: Any, schema: pa.Schema) -> list[str]:
    """The input columns the model takes (its signature's, in the input's order); every column
    when it has no signature. A column the model needs but the input lacks is left to the
    model, which names it."""
    signature = model.metadata.get_input_schema()
    if signature is None:
        return list(schema.names)
    wanted = set(signature.input_names())
    return [name for name in schema.names if name in wanted]


def returns_numbers(model: Any) -> bool:
    """Whether the model's output signature promises one number per row (a regression model:
    ``prediction`` and no ``proba_*`` column). A model without an output signature is taken
    as it answers."""
    schema = model.metadata.get_output_schema()
    if schema is None:
        return False
    return not any(str(name).startswith("proba_") for name in schema.input_names())


SCHEMA_FAILURE = "Failed to enforce schema of data"
MAX_REASON_CHARS = 500


def refusal(exc: Exception) -> str:
    """The model's reason for refusing a batch, on one line. MLflow's schema check quotes the
    whole batch before its reason ("... with schema '...'. Error: <reason>"): keep the reason."""
    text = str(exc)
    if text.startswith(SCHEMA_FAILURE) and ". Error: " in text:
        text = text.rsplit(". Error: ", 1)[1]
    code = getattr(exc, "error_code", None)
    reason = one_line(text)[:MAX_REASON_CHARS] if text.strip() else type(exc).__name__
    return f"{reason} ({code})" if code else reason


def predict(model: Any, batch: pa.RecordBatch, columns: list[str], where: str, start: int) -> Any:
    """The model's predictions for one batch; a StepError naming ``where`` (the input, the
    batch and its rows) and the model's reason (which names the column) when it refuses it."""
    frame = batch.select(columns).to_pandas()
    try:
        predictions = model.predict(frame)
    except (MlflowException, ValueError, KeyError) as exc:
        raise StepError(
            f"{where}: the model refused the input (its row numbers count from row {start}): "
            f"{refusal(exc)}"
        ) from exc
    except FloatingPointError as exc:  # the served model's NonFiniteOutputError
        raise StepError(f"{where}: the model's output is unusable: {first_line(exc)}") from exc
    if len(predictions) != batch.num_rows:
        raise StepError(f"{where}: the model returned {len(predictions)} rows")
    return predictions


def checked_numbers(predictions: Any, where: str, start: int) -> Any:
    """A regression model's output with ``prediction`` as float64, every row finite; a
    StepError naming ``where`` and the first bad row otherwise (nothing non-finite is written)."""
    if not hasattr(predictions, "columns") or "prediction" not in predictions.columns:
        raise StepError(f"{where}: the model returned no 'prediction' column")
    try:
        numbers = checked_predictions(predictions["prediction"])
    except UnusableOutputError as exc:
        raise StepError(
            f"{where}: the model's predictions are unusable (its row numbers count from row "
            f"{start}): {exc}"
        ) from exc
    return predictions.assign(prediction=numbers)


def output_table(batch: pa.RecordBatch, keep: tuple[str, ...], predictions: Any) -> pa.Table:
    """The kept input columns (their types as read), then the model's columns."""
    predicted = pa.Table.from_pandas(predictions, preserve_index=False)
    clash = sorted(set(keep) & set(predicted.column_names))
    if clash:
        raise StepError(f"--keep-columns {clash}: the model's output has column(s) of that name")
    arrays = [batch.column(name) for name in keep] + list(predicted.columns)
    return pa.Table.from_arrays(arrays, names=[*keep, *predicted.column_names])


def scored_tables(
    config: ScoreConfig, source: tables.Source, model: Any
) -> Iterator[tuple[int, pa.Table]]:
    """(rows, output table) of each non-empty batch of the input, in input order."""
    columns = model_columns(model, source.schema)
    numbers = returns_numbers(model)
    start = 0
    for index, batch in enumerate(source.batches(config.batch_rows)):
        if batch.num_rows == 0:
            continue
        end = start + batch.num_rows
        where = f"{config.input_uri} batch {index} (rows {start}-{end - 1})"
        predictions = predict(model, batch, columns, where, start)
        if numbers:
            predictions = checked_numbers(predictions, where, start)
        yield batch.num_rows, output_table(batch, config.keep_columns, predictions)
        start = end


def write_predictions(config: ScoreConfig, source: tables.Source, model: Any) -> Written:
    """Score every batch into the output file, which appears only when all are written."""
    scored = scored_tables(config, source, model)
    first = next(scored, None)
    if first is None:
        raise StepError(f"{config.input_uri} has no rows to score")
    rows, table = first
    batches = 1
    with table_writer(config.output_uri, config.output_format, table.schema) as write:
        write(table)
        for batch_rows, table in scored:
            write(table)
            rows += batch_rows
            batches += 1
    return Written(rows, batches, table.schema.names)


def manifest_of(
    config: ScoreConfig, model: ResolvedModel, written: Written, fingerprint: str, sha256: str
) -> dict[str, Any]:
    """What the output holds and where it came from (the one place with a time in it)."""
    return {
        "rows": written.rows,
        "columns": written.columns,
        "format": config.output_format,
        "model_uri": model.uri,
        "model_name": model.name,
        "model_version": model.version,
        "model_run_id": model.run_id,
        "input_uri": config.input_uri,
        "input_fingerprint": fingerprint,
        "output_uri": config.output_uri,
        "output_sha256": sha256,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def score(config: ScoreConfig) -> ScoreResult:
    """Score ``config.input_uri`` with the model version ``config.model_uri`` names now."""
    started = time.perf_counter()
    source = tables.open_source(config.input_uri)  # a bad input fails before MLflow is asked
    check_keep_columns(config, source.schema)
    resolved = resolve_model(config.model_uri)
    model = load_model(resolved)
    fingerprint = storage.fingerprint(config.input_uri)
    written = write_predictions(config, source, model)
    sha256 = file_sha256(config.output_uri)
    manifest = manifest_of(config, resolved, written, fingerprint, sha256)
    write_manifest(manifest, config.manifest_uri, config.output_uri)
    seconds = time.perf_counter() - started
    log.info(
        "scored %d rows of %s with %s v%d in %.1f s (%.0f rows/s) -> %s",
        written.rows, config.input_uri, resolved.name, resolved.version, seconds,
        written.rows / max(seconds, 1e-9), config.output_uri,
    )  # fmt: skip
    return ScoreResult(
        model_uri=config.model_uri,
        model_name=resolved.name,
        model_version=resolved.version,
        model_run_id=resolved.run_id,
        input_uri=config.input_uri,
        input_fingerprint=fingerprint,
        output_uri=config.output_uri,
        output_format="csv" if config.output_format == "csv" else "parquet",
        output_sha256=sha256,
        manifest_uri=config.manifest_uri,
        rows=written.rows,
        batches=written.batches,
        columns=written.columns,
    )
