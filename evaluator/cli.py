"""``python -m evaluator``: score the candidate run's model and the registry's ``champion`` on the
same raw test rows (never an old logged number) and decide whether to deploy: the accuracy floor,
a paired bootstrap interval of the gain, the worst categorical slice and the calibration error.
A regression target (the task the data was preprocessed for) is judged by the R² floor, a paired
bootstrap interval of the RMSE reduction and the worst slice's RMSE; a champion of the other task
is not compared (a person decides)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from common.step import StepArgumentParser, UsageError, run_step, script_name
from evaluator.thresholds import Thresholds

if TYPE_CHECKING:
    from contract.results import EvaluateResult
    from evaluator.job import EvaluateConfig

# The parser needs only the gate's thresholds: the job (MLflow, torch, pandas, sklearn) is
# imported once the flags are parsed, so --help and usage errors are quick.
PROG = "python -m evaluator"

# The gate's flags, which the DAG passes from its run params (``make schemas`` publishes their
# types and defaults for it: dags/tabular_pipeline/flags/evaluation_gate.json).
GATE_GROUP = "gate"
DEFAULT_CONFIDENCE = 0.95
# The most resamples: the interval needs a few thousand, and each takes memory (a count per
# kind of paired outcome), so a typo (extra zeros) is refused instead of filling the memory.
MAX_BOOTSTRAP_SAMPLES = 1_000_000


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The evaluator's flags in argument groups; ``prog``: the command in the usage line."""
    p = StepArgumentParser(prog=prog, description=__doc__)
    inputs = p.add_argument_group("candidate and champion", "what is scored, on which rows")
    inputs.add_argument("--run-id", required=True, metavar="ID", help="MLflow run of the candidate")
    inputs.add_argument(
        "--data-path",
        required=True,
        metavar="URI",
        help="the --output folder of preprocess (local, file:// or s3://)",
    )
    inputs.add_argument(
        "--model-name",
        required=True,
        metavar="NAME",
        help="registered model holding the champion",
    )
    add_gate_flags(p.add_argument_group(GATE_GROUP, "what a candidate must clear to be deployed"))
    add_measure_flags(p.add_argument_group("measurement", "the interval, the slices, the plots"))
    return p


def add_measure_flags(group: argparse._ArgumentGroup) -> None:
    """How the gain's interval and the slices are measured, and whether plots are logged."""
    group.add_argument(
        "--bootstrap-samples",
        type=int,
        default=2000,
        metavar="N",
        help=f"paired resamples (1 to {MAX_BOOTSTRAP_SAMPLES})",
    )
    group.add_argument(
        "--bootstrap-seed",
        type=int,
        default=0,
        metavar="N",
        help="same seed, same interval (0 or more)",
    )
    group.add_argument(
        "--min-slice-size",
        type=int,
        default=50,
        metavar="ROWS",
        help="rows a categorical slice needs to count (1 or more)",
    )
    group.add_argument(
        "--plots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log the confusion matrix, ROC, PR and calibration plots (regression: predicted "
        "vs actual and residuals) to the candidate's run",
    )


def add_gate_flags(group: argparse._ArgumentGroup) -> None:
    """The promotion gate's thresholds (defaults: ``Thresholds``) and the interval's level."""
    defaults = Thresholds()
    group.add_argument(
        "--min-accuracy",
        type=float,
        metavar="FLOAT",
        default=defaults.min_accuracy,
        help="accuracy floor on test (0 to 1; classification)",
    )
    group.add_argument(
        "--min-r2",
        type=float,
        metavar="FLOAT",
        default=defaults.min_r2,
        help="R² floor on test (at most 1; 0: no worse than predicting the test rows' mean; "
        "regression)",
    )
    group.add_argument(
        "--min-improvement",
        type=float,
        metavar="FLOAT",
        default=defaults.min_improvement,
        help="the lower bound of the gain's interval must exceed this (-1 to 1): accuracy "
        "points, or for regression a fraction of the champion's RMSE (0.01: the RMSE must fall "
        "by more than 1 percent)",
    )
    group.add_argument(
        "--confidence",
        type=float,
        metavar="FLOAT",
        default=DEFAULT_CONFIDENCE,
        help="the interval's level (between 0 and 1)",
    )
    group.add_argument(
        "--slice-tolerance",
        type=float,
        metavar="FLOAT",
        default=defaults.slice_tolerance,
        help="how much less accurate than the champion's worst slice the candidate's may be "
        "(0 to 1); regression: how much higher its RMSE may be, as a fraction of the "
        "champion's (0.05: 5 percent)",
    )
    group.add_argument(
        "--calibration-tolerance",
        type=float,
        metavar="FLOAT",
        default=defaults.calibration_tolerance,
        help="how much higher than the champion's the candidate's calibration error may be "
        "(0 to 1; classification)",
    )


def resolve(args: argparse.Namespace) -> EvaluateConfig:
    """The checked configuration; a ``UsageError`` names the flag that is out of range. Every
    check bounds both ends, so NaN and infinity are out of range too."""
    checks = {
        "--min-accuracy": 0 <= args.min_accuracy <= 1,
        "--min-r2": -math.inf < args.min_r2 <= 1,
        "--min-improvement": -1 <= args.min_improvement <= 1,
        "--bootstrap-samples": 1 <= args.bootstrap_samples <= MAX_BOOTSTRAP_SAMPLES,
        "--bootstrap-seed": args.bootstrap_seed >= 0,  # numpy refuses a negative seed
        "--confidence": 0 < args.confidence < 1,
        "--min-slice-size": args.min_slice_size >= 1,
        "--slice-tolerance": 0 <= args.slice_tolerance <= 1,
        "--calibration-tolerance": 0 <= args.calibration_tolerance <= 1,
    }
    for flag, ok in checks.items():
        if not ok:
            value = getattr(args, flag.removeprefix("--").replace("-", "_"))
            raise UsageError(f"{flag} {value} is out of range (see --help)")
    thresholds = Thresholds(
        args.min_accuracy,
        args.min_improvement,
        args.slice_tolerance,
        args.calibration_tolerance,
        args.min_r2,
    )
    from evaluator.job import EvaluateConfig

    return EvaluateConfig(
        run_id=args.run_id,
        data_path=args.data_path.rstrip("/"),
        model_name=args.model_name,
        thresholds=thresholds,
        bootstrap_samples=args.bootstrap_samples,
        confidence=args.confidence,
        bootstrap_seed=args.bootstrap_seed,
        min_slice_size=args.min_slice_size,
        plots=args.plots,
    )


def run(args: argparse.Namespace) -> EvaluateResult:
    """Score and decide as the parsed flags say."""
    from evaluator.job import evaluate

    return evaluate(resolve(args))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run_step("evaluate", build_parser(prog), run, argv)


def main_entry() -> None:
    """The ``tabular-evaluate`` console script."""
    raise SystemExit(main(prog=script_name()))
