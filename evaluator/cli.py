"""``python -m evaluator``: score the candidate run's model and the registry's ``champion`` on the
same raw test rows (never an old logged number) and decide whether to deploy: the accuracy floor,
a paired bootstrap interval of the gain, the worst categorical slice and the calibration error."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common.step import StepArgumentParser, UsageError, run_step
from evaluator.gate import Thresholds
from evaluator.job import EvaluateConfig, evaluate

# The gate's flags, which the DAG passes from its run params (``make schemas`` publishes their
# types and defaults for it: dags/tabular_pipeline/flags/evaluation_gate.json).
GATE_GROUP = "gate"
DEFAULT_CONFIDENCE = 0.95
# The most resamples: the interval needs a few thousand, and each takes memory (a count per
# kind of paired outcome), so a typo (extra zeros) is refused instead of filling the memory.
MAX_BOOTSTRAP_SAMPLES = 1_000_000


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog="python -m evaluator", description=__doc__)
    p.add_argument("--run-id", required=True, help="MLflow run of the candidate")
    p.add_argument("--data-path", required=True, help="the --output folder of preprocess")
    p.add_argument("--model-name", required=True, help="registered model holding the champion")
    add_gate_flags(p.add_argument_group(GATE_GROUP, "what a candidate must clear to be deployed"))
    p.add_argument(
        "--bootstrap-samples",
        type=int,
        default=2000,
        help=f"paired resamples (1 to {MAX_BOOTSTRAP_SAMPLES})",
    )
    p.add_argument(
        "--bootstrap-seed", type=int, default=0, help="same seed, same interval (0 or more)"
    )
    p.add_argument(
        "--min-slice-size",
        type=int,
        default=50,
        help="rows a categorical slice needs to count (1 or more)",
    )
    p.add_argument(
        "--plots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log the confusion matrix, ROC, PR and calibration plots to the candidate's run",
    )
    return p


def add_gate_flags(group: argparse._ArgumentGroup) -> None:
    """The promotion gate's thresholds (defaults: ``Thresholds``) and the interval's level."""
    defaults = Thresholds()
    group.add_argument(
        "--min-accuracy",
        type=float,
        default=defaults.min_accuracy,
        help="accuracy floor on test (0 to 1)",
    )
    group.add_argument(
        "--min-improvement",
        type=float,
        default=defaults.min_improvement,
        help="the lower bound of the gain's interval must exceed this (-1 to 1)",
    )
    group.add_argument(
        "--confidence",
        type=float,
        default=DEFAULT_CONFIDENCE,
        help="the interval's level (between 0 and 1)",
    )
    group.add_argument(
        "--slice-tolerance",
        type=float,
        default=defaults.slice_tolerance,
        help="how much less accurate than the champion's worst slice the candidate's may be "
        "(0 to 1)",
    )
    group.add_argument(
        "--calibration-tolerance",
        type=float,
        default=defaults.calibration_tolerance,
        help="how much higher than the champion's the candidate's calibration error may be "
        "(0 to 1)",
    )


def resolve(args: argparse.Namespace) -> EvaluateConfig:
    """The checked configuration; a ``UsageError`` names the flag that is out of range. Every
    check bounds both ends, so NaN and infinity are out of range too."""
    checks = {
        "--min-accuracy": 0 <= args.min_accuracy <= 1,
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
        args.min_accuracy, args.min_improvement, args.slice_tolerance, args.calibration_tolerance
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    return run_step("evaluate", build_parser(), lambda args: evaluate(resolve(args)), argv)


def main_entry() -> None:
    raise SystemExit(main())
