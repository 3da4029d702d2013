"""``python -m validator``: check raw data against a schema (given with --schema, kept in
--schema-store across runs, inferred from --reference, or inferred from the data itself), measure
drift against --reference, and write anomalies.json and report.html listing every problem. Errors
fail the step after the reports are written; warnings only count."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING

from common.step import StepArgumentParser, StepError, run_step, script_name
from common.task import AUTO_RULE, TASK_CHOICES
from common.tracking import pipeline_home
from validator.thresholds import Thresholds

if TYPE_CHECKING:
    from contract.results import ValidateResult
    from validator.job import ValidateConfig

# The job (pandas, pyarrow, matplotlib) is imported once the flags are parsed, so --help and
# usage errors are quick.
PROG = "python -m validator"
THRESHOLD_HELP = {
    "min_rows": "fewer rows is an error",
    "null_rate_warning": "rise of a column's null rate over the schema's that is a warning",
    "null_rate_error": "rise of a column's null rate over the schema's that is an error",
    "invalid_share_error": "share of a column's values out of the schema range or with unseen "
    "categories that is an error (any is a warning)",
    "range_margin": "values this share of the schema range's width beyond either end still "
    "pass (0: the range is exact)",
    "label_shift_warning": "change of a class's share of rows (vs the schema) that is a "
    "warning (classification targets)",
    "label_shift_error": "change of a class's share of rows that is an error",
    "psi_warning": "population stability index against --reference that is a warning (of a "
    "column, and of a regression target: its target drift)",
    "psi_error": "population stability index against --reference that is an error",
}


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The validator's flags in argument groups; ``prog``: the command in the usage line."""
    p = StepArgumentParser(prog=prog, description=__doc__)
    add_data_flags(p.add_argument_group("data", "what is checked and where the reports go"))
    schemas = p.add_argument_group("schema", "what the data is checked against (one of these)")
    schema = schemas.add_mutually_exclusive_group()
    schema.add_argument(
        "--schema",
        metavar="URI",
        help="schema JSON to check against (used as is, never written)",
    )
    schema.add_argument(
        "--schema-store",
        metavar="URI",
        help="schema JSON kept across runs: checked against when it exists; otherwise inferred "
        "(from --reference, else from this data) and stored there once the data passes",
    )
    add_drift_flags(p.add_argument_group("drift", "the reference data drift is measured against"))
    thresholds = p.add_argument_group("thresholds", "when a finding is a warning or an error")
    for field in fields(Thresholds):
        kind = int if field.name == "min_rows" else float
        thresholds.add_argument(
            "--" + field.name.replace("_", "-"),
            type=kind,
            default=field.default,
            metavar="ROWS" if kind is int else "FLOAT",
            help=THRESHOLD_HELP[field.name],
        )
    report = p.add_argument_group("report", "report.html")
    report.add_argument(
        "--max-plots", type=int, default=60, metavar="N", help="columns drawn in report.html"
    )
    return p


def add_data_flags(group: argparse._ArgumentGroup) -> None:
    """The data, its label and rows' key, its date, and the reports' folder."""
    group.add_argument(
        "--source",
        required=True,
        metavar="URI",
        help="raw data: parquet file or folder, or CSV (local, file:// or s3://)",
    )
    group.add_argument("--target", required=True, metavar="COLUMN", help="label column")
    group.add_argument(
        "--task",
        choices=TASK_CHOICES,
        default="auto",
        help="what the target is learnt as, which decides its checks (pass preprocess the "
        f"same); {AUTO_RULE}",
    )
    group.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="COLUMN",
        help="column that identifies a row (repeat for a composite key): must be unique, non-null",
    )
    group.add_argument(
        "--date",
        default=dt.date.today().isoformat(),
        metavar="DATE",
        help="logical date, YYYY-MM-DD",
    )
    group.add_argument(
        "--output",
        metavar="URI",
        help="folder for anomalies.json, report.html and an inferred schema.json; when not "
        "given, $PIPELINE_HOME/validate/<date>",
    )


def add_drift_flags(group: argparse._ArgumentGroup) -> None:
    """The reference data for drift, where it may be read from, and the drift's bins."""
    group.add_argument(
        "--reference",
        metavar="REFERENCE",
        help="reference data for drift: models:/NAME@ALIAS for the raw data that model version "
        "was trained on (e.g. models:/churn@champion), none, or a data URI under an "
        "--allowed-reference-root; without a schema, the schema is inferred from it",
    )
    group.add_argument(
        "--allowed-reference-root",
        action="append",
        default=[],
        metavar="URI",
        help="where a data --reference may be read from: a local folder or an object-store "
        "prefix (s3://bucket/prefix); repeat for several. Without it, only data beside --source "
        "(any local path when --source is local, else the bucket of --source). Any other "
        "reference (http://, chained a::b URLs, .. segments, another bucket) is refused before "
        "anything is read",
    )
    group.add_argument(
        "--drift-bins", type=int, default=10, metavar="N", help="quantile bins per numeric column"
    )


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
    from validator.job import ValidateConfig
    from validator.reference import check_reference_location

    check_reference_location(args.reference, args.source, args.allowed_reference_root)
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
        task=args.task,
    )


def run(args: argparse.Namespace) -> ValidateResult:
    """Validate as the parsed flags say."""
    from validator.job import validate

    return validate(resolve_config(args))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run_step("validate", build_parser(prog), run, argv)


def main_entry() -> None:
    """The ``tabular-validate`` console script."""
    raise SystemExit(main(prog=script_name()))
