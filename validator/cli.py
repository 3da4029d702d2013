"""``python -m validator``: check raw data against a schema (given with --schema, kept in
--schema-store across runs, inferred from --reference, or inferred from the data itself), measure
drift against --reference, and write anomalies.json and report.html listing every problem. Errors
fail the step after the reports are written; warnings only count."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import pandas as pd

from common import storage
from common.step import StepArgumentParser, StepError, run_step
from common.tracking import pipeline_home
from contract.results import AnomalyCounts, DriftSummary, ValidateResult
from validator.checks import (
    Anomaly,
    Thresholds,
    check_against_schema,
    check_data,
    ordered,
)
from validator.drift import ColumnDrift, compare, drift_anomalies
from validator.profile import ColumnProfile, profile_frame
from validator.reference import ResolvedReference, resolve_reference
from validator.report import SchemaOrigin, ValidationReport, render_html
from validator.schema import DataSchema, SchemaError, infer_schema, parse_schema

log = logging.getLogger(__name__)

THRESHOLD_HELP = {
    "min_rows": "fewer rows is an error",
    "null_rate_warning": "rise of a column's null rate over the schema's that is a warning",
    "null_rate_error": "rise of a column's null rate over the schema's that is an error",
    "invalid_share_error": "share of a column's values out of the schema range or with unseen "
    "categories that is an error (any is a warning)",
    "range_margin": "values this share of the schema range's width beyond either end still "
    "pass (0: the range is exact)",
    "label_shift_warning": "change of a class's share of rows (vs the schema) that is a warning",
    "label_shift_error": "change of a class's share of rows that is an error",
    "psi_warning": "population stability index against --reference that is a warning",
    "psi_error": "population stability index against --reference that is an error",
}
Profiles = dict[str, ColumnProfile]
DRIFTED_LISTED = 20  # drifted column names carried in the result (the report has all)


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


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog="python -m validator", description=__doc__)
    p.add_argument("--source", required=True, help="raw data: parquet file or folder, or CSV")
    p.add_argument("--target", required=True, help="label column")
    p.add_argument("--date", default=dt.date.today().isoformat(), help="logical date, YYYY-MM-DD")
    p.add_argument(
        "--output",
        help="folder for anomalies.json, report.html and an inferred schema.json; when not "
        "given, $PIPELINE_HOME/validate/<date>",
    )
    schema = p.add_mutually_exclusive_group()
    schema.add_argument("--schema", help="schema JSON to check against (used as is, never written)")
    schema.add_argument(
        "--schema-store",
        help="schema JSON kept across runs: checked against when it exists; otherwise inferred "
        "(from --reference, else from this data) and stored there once the data passes",
    )
    p.add_argument(
        "--reference",
        help="reference data for drift: a data URI, or models:/NAME@ALIAS for the raw data that "
        "model version was trained on (e.g. models:/churn@champion), or none; without a schema, "
        "the schema is inferred from it",
    )
    p.add_argument(
        "--key",
        action="append",
        default=[],
        help="column that identifies a row (repeat for a composite key): must be unique, non-null",
    )
    for field in fields(Thresholds):
        kind = int if field.name == "min_rows" else float
        flag = "--" + field.name.replace("_", "-")
        p.add_argument(flag, type=kind, default=field.default, help=THRESHOLD_HELP[field.name])
    p.add_argument("--drift-bins", type=int, default=10, help="quantile bins per numeric column")
    p.add_argument("--max-plots", type=int, default=60, help="columns drawn in report.html")
    return p


def _check_thresholds(thresholds: Thresholds) -> None:
    """Refuse thresholds that make no sense, naming the flag."""
    for field in fields(Thresholds):
        value = getattr(thresholds, field.name)
        flag = "--" + field.name.replace("_", "-")
        if field.name == "min_rows" and value < 1:
            raise StepError(f"{flag} {value}: must be at least 1")
        if field.name != "min_rows" and not 0 <= value < float("inf"):
            raise StepError(f"{flag} {value}: must be a finite number >= 0")
    for name in ("null_rate", "label_shift", "psi"):
        warning, error = (
            getattr(thresholds, f"{name}_warning"),
            getattr(thresholds, f"{name}_error"),
        )
        if warning > error:
            flag = name.replace("_", "-")
            raise StepError(f"--{flag}-warning {warning} is above --{flag}-error {error}")


def resolve_config(args: argparse.Namespace) -> ValidateConfig:
    """The run's configuration from the flags; a StepError names a bad flag."""
    try:
        dt.date.fromisoformat(args.date)
    except ValueError as exc:
        raise StepError(f"--date {args.date!r} is not YYYY-MM-DD") from exc
    thresholds = Thresholds(**{f.name: getattr(args, f.name) for f in fields(Thresholds)})
    _check_thresholds(thresholds)
    if args.drift_bins < 2:
        raise StepError(f"--drift-bins {args.drift_bins}: must be at least 2")
    if args.max_plots < 0:
        raise StepError(f"--max-plots {args.max_plots}: must be >= 0")
    return ValidateConfig(
        source=args.source,
        target=args.target,
        date=args.date,
        output=(args.output or str(pipeline_home() / "validate" / args.date)).rstrip("/"),
        schema=args.schema,
        schema_store=args.schema_store,
        reference=args.reference,
        keys=tuple(dict.fromkeys(args.key)),
        thresholds=thresholds,
        drift_bins=args.drift_bins,
        max_plots=args.max_plots,
    )


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


def read_reference(config: ValidateConfig, resolved: ResolvedReference) -> Reference | None:
    if resolved.uri is None:
        return None
    frame = storage.read_table(resolved.uri)
    profiles = profile_frame(frame)
    return Reference(resolved.uri, profiles, infer_schema(frame, profiles, config.target))


def check(
    config: ValidateConfig, frame: pd.DataFrame, profiles: Profiles, reference: Reference | None
) -> tuple[SchemaChoice, list[Anomaly], dict[str, ColumnDrift]]:
    """The schema, every anomaly (errors first) and the drift of each column."""
    choice = choose_schema(
        config,
        lambda: infer_schema(frame, profiles, config.target),
        reference.schema if reference is not None else None,
    )
    anomalies = check_data(frame, profiles, config.target, config.thresholds, config.keys)
    if choice.origin != "data":  # a schema inferred from this data holds no news about it
        anomalies += check_against_schema(frame, profiles, choice.schema, config.thresholds)
    drift = {}
    if reference is not None:
        drift = compare(reference.profiles, profiles, config.drift_bins)
    return choice, ordered(anomalies + drift_anomalies(drift, config.thresholds)), drift


def validate(args: argparse.Namespace) -> ValidateResult:
    config = resolve_config(args)
    resolved = resolve_reference(config.reference)
    frame = storage.read_table(config.source)
    profiles = profile_frame(frame)
    reference = read_reference(config, resolved)
    choice, anomalies, drift = check(config, frame, profiles, reference)
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
        row_count=len(frame),
        anomalies=anomalies,
        profiles=profiles,
        drift=drift,
        thresholds=config.thresholds,
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


def main(argv: Sequence[str] | None = None) -> int:
    return run_step("validate", build_parser(), validate, argv)


def main_entry() -> None:
    raise SystemExit(main())
