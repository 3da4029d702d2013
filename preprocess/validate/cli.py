"""``python -m preprocess.validate``: check raw data against a schema (given, inferred from a
reference, or inferred from the data itself) and write an anomalies report listing every problem.
Errors fail the step after the report is written; warnings only count."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from contract.results import AnomalyCounts, ValidateResult
from contract.step import StepArgumentParser, StepError, run_step
from contract.tracking import pipeline_home
from preprocess import io
from preprocess.validate.checks import (
    Anomaly,
    Thresholds,
    check_against_schema,
    check_data,
    infer_schema,
)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog="python -m preprocess.validate", description=__doc__)
    p.add_argument("--source", required=True, help="raw data: parquet file or folder, or CSV")
    p.add_argument("--target", required=True, help="label column")
    p.add_argument("--date", default=dt.date.today().isoformat(), help="logical date, YYYY-MM-DD")
    p.add_argument("--schema", help="schema JSON to check against (default: infer one)")
    p.add_argument("--reference", help="reference data whose inferred schema is checked against")
    p.add_argument(
        "--output",
        help="folder for schema.json and anomalies.json (default: $PIPELINE_HOME/validate/<date>)",
    )
    p.add_argument("--min-rows", type=int, default=Thresholds.min_rows, help="fewer is an error")
    return p


def resolve_schema(
    args: argparse.Namespace, output: str, frame: Any
) -> tuple[dict[str, Any], str, bool]:
    """The schema to check against, its URI, and whether it came from outside this data."""
    if args.schema:
        schema = io.read_json(args.schema)
        if not isinstance(schema, dict) or not isinstance(schema.get("columns"), dict):
            raise StepError(f"--schema {args.schema}: not a schema (no 'columns' object)")
        return schema, args.schema, True
    uri = io.join_uri(output, "schema.json")
    if args.reference:
        schema = infer_schema(io.read_table(args.reference), args.target)
        io.write_json(schema, uri)
        return schema, uri, True
    schema = infer_schema(frame, args.target)
    io.write_json(schema, uri)
    return schema, uri, False


def validate(args: argparse.Namespace) -> ValidateResult:
    try:
        dt.date.fromisoformat(args.date)
    except ValueError as exc:
        raise StepError(f"--date {args.date!r} is not YYYY-MM-DD") from exc
    output = (args.output or str(pipeline_home() / "validate" / args.date)).rstrip("/")
    frame = io.read_table(args.source)
    thresholds = Thresholds(min_rows=args.min_rows)
    anomalies: list[Anomaly] = check_data(frame, args.target, thresholds)
    schema, schema_uri, external = resolve_schema(args, output, frame)
    if external:
        anomalies += check_against_schema(frame, schema, thresholds)
    counts = Counter(a.severity for a in anomalies)
    report_uri = io.join_uri(output, "anomalies.json")
    io.write_json(
        {
            "source": args.source,
            "date": args.date,
            "schema_uri": schema_uri,
            "row_count": len(frame),
            "counts": {"error": counts["error"], "warning": counts["warning"]},
            "anomalies": [a.to_dict() for a in anomalies],
        },
        report_uri,
    )
    for anomaly in anomalies:
        log.log(
            logging.ERROR if anomaly.severity == "error" else logging.WARNING,
            "%s: %s",
            anomaly.check,
            anomaly.description,
        )
    if counts["error"]:
        first = "; ".join(a.description for a in anomalies if a.severity == "error")
        raise StepError(
            f"{args.source}: {counts['error']} validation error(s): {first[:600]} "
            f"(full report: {report_uri})"
        )
    log.info("validated %s: %d rows, %d warnings", args.source, len(frame), counts["warning"])
    return ValidateResult(
        source=args.source,
        date=args.date,
        row_count=len(frame),
        column_count=frame.shape[1],
        anomaly_counts=AnomalyCounts(error=0, warning=counts["warning"]),
        schema_uri=schema_uri,
        report_uri=report_uri,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_step("validate", build_parser(), validate, argv)


def main_entry() -> None:
    raise SystemExit(main())
