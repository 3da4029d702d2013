"""``python -m scorer --model models:/NAME@ALIAS --input URI --output URI``: score every row of a
parquet or CSV file (or a folder of parquet files) with a registered model, batch by batch, and
write the predictions (a classifier's with its class probabilities; a regression model's as one
number per row) as parquet, or CSV for a ``.csv`` output, with a manifest beside them
(``<output>.manifest.json``). The model is downloaded and checked against
its integrity record before any of its code runs. The same input and model give the same output
bytes."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from common.step import StepArgumentParser, UsageError, run_step, script_name
from scorer.config import ScoreConfig

if TYPE_CHECKING:
    from contract.results import ScoreResult

# The job (pandas, pyarrow, MLflow) is imported only once the flags are parsed, so that --help
# and usage errors cost no heavy import.
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))$")
OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
DEFAULT_BATCH_ROWS = 65_536
MAX_BATCH_ROWS = 10_000_000
PROG = "python -m scorer"


def model_uri(text: str) -> str:
    if not MODEL_URI.match(text):
        raise argparse.ArgumentTypeError(
            f"expected models:/NAME@ALIAS or models:/NAME/VERSION, got {text!r}"
        )
    return text


def batch_rows(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_BATCH_ROWS:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {MAX_BATCH_ROWS}, got {text!r}"
        )
    return int(text)


def add_model_flag(group: argparse._ActionsContainer) -> None:
    """``--model``: the registered model to use (shared with ``python -m scorer.serve``)."""
    group.add_argument(
        "--model",
        required=True,
        type=model_uri,
        metavar="URI",
        help="registered model: models:/NAME@ALIAS (e.g. @champion) or models:/NAME/VERSION",
    )


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The scorer's flags in argument groups; ``prog``: the command in the usage line."""
    p = StepArgumentParser(prog=prog, description=__doc__)
    add_model_flag(p.add_argument_group("model", "what scores the rows"))
    data = p.add_argument_group("data", "what is scored and where the predictions go")
    data.add_argument(
        "--input",
        required=True,
        metavar="URI",
        help="raw rows: a parquet file or folder, or a CSV/TSV file (local path or s3://)",
    )
    data.add_argument(
        "--output",
        required=True,
        metavar="URI",
        help="predictions file: .parquet (or .pq) or .csv; replaced whole, never half-written",
    )
    data.add_argument(
        "--keep-columns",
        nargs="+",
        default=[],
        metavar="COLUMN",
        help="input columns copied to the output before the predictions (ids, keys)",
    )
    runtime = p.add_argument_group("runtime", "how the rows are read")
    runtime.add_argument(
        "--batch-rows",
        type=batch_rows,
        default=DEFAULT_BATCH_ROWS,
        metavar="N",
        help=f"rows read and scored at a time (1 to {MAX_BATCH_ROWS}): bounds the memory",
    )
    return p


def output_format(output: str) -> str:
    """``parquet`` or ``csv`` from the output's extension; a UsageError for any other."""
    lowered = output.lower()
    for suffix, kind in OUTPUT_FORMATS.items():
        if lowered.endswith(suffix):
            return kind
    raise UsageError(
        f"--output {output}: expected a file name ending in {', '.join(OUTPUT_FORMATS)}"
    )


def resolve(args: argparse.Namespace) -> ScoreConfig:
    """The checked configuration; a UsageError for an output that would overwrite the input
    or a column named twice in --keep-columns."""
    kind = output_format(args.output)
    if args.output.rstrip("/") == args.input.rstrip("/"):
        raise UsageError(f"--output {args.output} is the --input: scoring never overwrites it")
    repeated = sorted({c for c in args.keep_columns if args.keep_columns.count(c) > 1})
    if repeated:
        raise UsageError(f"--keep-columns names {repeated} more than once")
    return ScoreConfig(
        model_uri=args.model,
        input_uri=args.input,
        output_uri=args.output,
        output_format=kind,
        keep_columns=tuple(args.keep_columns),
        batch_rows=args.batch_rows,
    )


def run(args: argparse.Namespace) -> ScoreResult:
    from scorer.job import score

    return score(resolve(args))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run_step("score", build_parser(prog), run, argv)


def main_entry() -> None:
    """The ``tabular-score`` console script (its usage line names it)."""
    raise SystemExit(main(prog=script_name()))
