"""The validation of one dataset: choose the schema, profile the data (streamed batch by batch,
in bounded memory: see ``validator.accumulate``), resolve the target's task (``--task``, or what
``auto`` gives the data's target, as preprocessing resolves it), check the data and measure
drift, then write anomalies.json and report.html and build the result."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from common import storage, tables
from common.step import StepError
from common.task import TaskChoice, resolve_task
from contract.results import AnomalyCounts, DriftSummary, ValidateResult
from tabular_model.transform import Task
from validator.checks import (
    Anomaly,
    Thresholds,
    check_against_schema,
    check_data,
    ordered,
)
from validator.drift import ColumnDrift, compare, drift_anomalies
from validator.profile import ColumnProfile, TableProfile
from validator.reference import ResolvedReference, resolve_reference
from validator.report import SchemaOrigin, ValidationReport, render_html
from validator.scan import profile_table
from validator.schema import DataSchema, SchemaError, infer_schema, parse_schema

log = logging.getLogger(__name__)


Profiles = dict[str, ColumnProfile]


DRIFTED_LISTED = 20  # drifted column names carried in the result (the report has all)
BATCH_ROWS = 1 << 16  # rows profiled at a time: memory holds a few batches, never the input


@dataclass(frozen=True)
class ValidateConfig:
    source: str
    target: str
    date: str
    output: str
    schema: str | None
    schema_store: str | None
    reference: str | None
    keys: tuple[str, ...]
    thresholds: Thresholds
    drift_bins: int
    max_plots: int
    task: TaskChoice = "auto"


def write_text(text: str, uri: str) -> None:
    storage.write_bytes_atomic(text.encode("utf-8"), uri)


def write_document(payload: object, uri: str) -> None:
    """A JSON document written atomically (sorted keys, so reruns give the same bytes)."""
    write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n", uri)


def read_schema(uri: str, flag: str, target: str) -> DataSchema:
    """The schema at ``uri``; a StepError names the flag and what is wrong."""
    try:
        schema = parse_schema(storage.read_json(uri))
    except SchemaError as exc:
        raise StepError(f"{flag} {uri}: {exc}") from exc
    if schema.target != target:
        raise StepError(
            f"{flag} {uri}: the schema is for target {schema.target!r}, not --target {target!r}"
        )
    return schema


@dataclass(frozen=True)
class SchemaChoice:
    """The schema of a run, where it lives now, where it came from, and where it is to be
    stored once the data passes (an inferred schema with --schema-store)."""

    schema: DataSchema
    uri: str
    origin: SchemaOrigin
    store_at: str | None = None


def choose_schema(
    config: ValidateConfig, infer_from_data: Callable[[], DataSchema], reference: DataSchema | None
) -> SchemaChoice:
    """--schema, else the stored schema, else one inferred from the reference or the data; an
    inferred schema is written to the output folder (so a failed first run still shows it)."""
    if config.schema:
        schema = read_schema(config.schema, "--schema", config.target)
        return SchemaChoice(schema, config.schema, "given")
    store = config.schema_store
    if store and storage.exists(store):
        return SchemaChoice(read_schema(store, "--schema-store", config.target), store, "store")
    schema = reference if reference is not None else infer_from_data()
    copy = storage.join_uri(config.output, "schema.json")
    write_document(schema.to_json(), copy)
    return SchemaChoice(schema, copy, "reference" if reference else "data", store)


@dataclass(frozen=True)
class Reference:
    """The reference data's profiles and the schema inferred from it."""

    uri: str
    profiles: Profiles
    schema: DataSchema


def profile_source(uri: str, target: str, keys: tuple[str, ...] = ()) -> TableProfile:
    """The profile of the data at ``uri``, read batch by batch (text dictionary-encoded)."""
    source = tables.open_source(uri)
    return profile_table(
        source.schema, lambda: source.batches(BATCH_ROWS, dictionary=True), target, keys
    )


def target_task(choice: TaskChoice, table: TableProfile) -> Task:
    """The task of the profiled data's target: ``choice``, or what ``auto`` gives its values
    (classification when the data has no such column: that is an error of its own)."""
    if table.target_values is None:
        return "classification" if choice == "auto" else choice
    return resolve_task(choice, table.target_values)


def read_reference(config: ValidateConfig, resolved: ResolvedReference) -> Reference | None:
    if resolved.uri is None:
        return None
    table = profile_source(resolved.uri, config.target)
    task = target_task(config.task, table)
    return Reference(resolved.uri, table.columns, infer_schema(table, config.target, task))


def check(
    config: ValidateConfig, table: TableProfile, reference: Reference | None, task: Task
) -> tuple[SchemaChoice, list[Anomaly], dict[str, ColumnDrift]]:
    """The schema, every anomaly (errors first) and the drift of each column; ``task``: the
    target's."""
    choice = choose_schema(
        config,
        lambda: infer_schema(table, config.target, task),
        reference.schema if reference is not None else None,
    )
    anomalies = check_data(table, config.target, config.thresholds, task)
    if not table.rows:  # nothing to compare with a schema or a reference
        return choice, anomalies, {}
    if choice.origin != "data":  # a schema inferred from this data holds no news about it
        anomalies += check_against_schema(table, choice.schema, config.thresholds, task)
    drift = {}
    if reference is not None:
        drift = compare(reference.profiles, table.columns, config.drift_bins)
    numeric_target = config.target if task == "regression" else None
    found = drift_anomalies(drift, config.thresholds, numeric_target)
    return choice, ordered(anomalies + found), drift


def validate(config: ValidateConfig) -> ValidateResult:
    """Check the data and write the reports; a StepError after writing them when any check
    found an error."""
    resolved = resolve_reference(config.reference)
    table = profile_source(config.source, config.target, config.keys)
    task = target_task(config.task, table)
    log.info("target %r: %s (--task %s)", config.target, task, config.task)
    reference = read_reference(config, resolved)
    choice, anomalies, drift = check(config, table, reference, task)
    if resolved.anomaly is not None:
        anomalies = ordered([*anomalies, resolved.anomaly])
    failed = any(a.severity == "error" for a in anomalies)
    schema_uri = choice.uri
    if choice.store_at and not failed:
        write_document(choice.schema.to_json(), choice.store_at)
        schema_uri = choice.store_at
    report = ValidationReport(
        source=config.source,
        date=config.date,
        target=config.target,
        fingerprint=storage.fingerprint(config.source),
        schema_uri=schema_uri,
        schema_origin=choice.origin,
        schema_stored=schema_uri == choice.store_at,
        reference=resolved.uri,
        reference_note=resolved.note,
        keys=config.keys,
        row_count=table.rows,
        anomalies=anomalies,
        profiles=table.columns,
        drift=drift,
        thresholds=config.thresholds,
        task=task,
    )
    json_uri, html_uri = publish(report, config, choice, reference)
    return outcome(report, json_uri, html_uri)


def publish(
    report: ValidationReport,
    config: ValidateConfig,
    choice: SchemaChoice,
    reference: Reference | None,
) -> tuple[str, str]:
    """Write anomalies.json and report.html; their URIs."""
    json_uri = storage.join_uri(config.output, "anomalies.json")
    html_uri = storage.join_uri(config.output, "report.html")
    write_document(report.to_json(), json_uri)
    html = render_html(
        report,
        reference.profiles if reference is not None else {},
        choice.schema if choice.origin != "data" else None,
        config.max_plots,
    )
    write_text(html, html_uri)
    return json_uri, html_uri


def outcome(report: ValidationReport, json_uri: str, html_uri: str) -> ValidateResult:
    """The step's result, or a StepError listing the errors and naming the reports."""
    for anomaly in report.anomalies:
        level = logging.ERROR if anomaly.severity == "error" else logging.WARNING
        log.log(level, "%s: %s", anomaly.check, anomaly.description)
    counts = report.counts
    if counts["error"]:
        errors = "; ".join(a.description for a in report.anomalies if a.severity == "error")
        raise StepError(
            f"{report.source}: {counts['error']} validation error(s): {errors[:600]} "
            f"(report: {html_uri}; anomalies: {json_uri})"
        )
    log.info(
        "validated %s: %d rows x %d columns, %d warnings; report %s",
        report.source, report.row_count, len(report.profiles), counts["warning"], html_uri,
    )  # fmt: skip
    return ValidateResult(
        source=report.source,
        date=report.date,
        row_count=report.row_count,
        column_count=len(report.profiles),
        anomaly_counts=AnomalyCounts(**counts),
        schema_uri=report.schema_uri,
        schema_origin=report.schema_origin,
        report_uri=json_uri,
        html_report_uri=html_uri,
        fingerprint=report.fingerprint,
        drift=drift_summary(report),
    )


def drift_summary(report: ValidationReport) -> DriftSummary | None:
    """A few numbers about drift for the result (the report holds every column)."""
    if report.reference is None:
        return None
    worst = max(report.drift.values(), key=lambda d: (d.psi, d.column), default=None)
    drifted = report.drifted()
    return DriftSummary(
        reference_uri=report.reference,
        columns_compared=len(report.drift),
        max_psi=round(worst.psi, 6) if worst else 0.0,
        max_psi_column=worst.column if worst else None,
        drifted_count=len(drifted),
        drifted_columns=drifted[:DRIFTED_LISTED],
    )
