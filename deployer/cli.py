"""``python -m deployer --run-id ID --model-name NAME`` registers the run's model (once: a rerun
reuses the version), tags the version with the evaluation's decision, smoke-tests it, and points
``champion`` at it if ``champion`` is still the version the evaluation compared against, keeping
the old one as ``previous_champion``. ``python -m deployer --rollback --model-name NAME`` swaps
the two aliases back (after the same smoke test)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from common.evaluation_record import recorded_evaluation
from common.step import StepArgumentParser, StepError, run_step
from common.tracking import CHAMPION, image, reaching_mlflow, run_model_uri
from contract.results import DeployResult, EvaluateResult
from deployer.registry import (
    check_champion,
    move_champion,
    register_once,
    rollback_target,
    swap_champion,
    tag_version,
)
from deployer.smoke import sample_rows, smoke_test

log = logging.getLogger(__name__)


def expected_version(text: str) -> int | None:
    """``N`` (a version) or ``none`` (there must be no champion yet)."""
    if text.strip().lower() == "none":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a version number or 'none', got {text!r}")
    return int(text)


def tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog="python -m deployer", description=__doc__)
    p.add_argument("--run-id", help="MLflow run whose model becomes champion")
    p.add_argument("--model-name", required=True, help="registered model name")
    p.add_argument(
        "--rollback", action="store_true", help="move champion back to previous_champion"
    )
    p.add_argument(
        "--expected-champion-version",
        type=expected_version,
        default=argparse.SUPPRESS,
        metavar="N|none",
        help="refuse unless champion is still this version (the evaluation's champion_version;"
        " default: the evaluation recorded on the run)",
    )
    p.add_argument(
        "--data-path",
        help="a preprocess output whose raw sample rows the smoke test predicts; without it, "
        "the model's own input example",
    )
    p.add_argument(
        "--tag",
        type=tag,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra version tag (repeatable)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="promote even when the evaluation recorded on the run decided not to deploy",
    )
    return p


def evaluation_for(run_id: str, model_name: str) -> EvaluateResult | None:
    """The evaluation recorded on the run, when it was made for this registered model."""
    evaluation = recorded_evaluation(run_id)
    if evaluation is not None and evaluation.model_name != model_name:
        log.info(
            "run %s was last evaluated for %s, not %s", run_id, evaluation.model_name, model_name
        )
        return None
    return evaluation


def compare_and_set(
    args: argparse.Namespace, evaluation: EvaluateResult | None
) -> tuple[int | None, bool]:
    """The champion version to expect and whether to check it at all."""
    if hasattr(args, "expected_champion_version"):
        return args.expected_champion_version, True
    if evaluation is not None:
        return evaluation.champion_version, True
    log.warning(
        "no evaluation of run %s for %s and no --expected-champion-version: champion moves "
        "without a compare-and-set",
        args.run_id,
        args.model_name,
    )
    return None, False


def version_tags(
    run_id: str, evaluation: EvaluateResult | None, extra: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """The decision behind this version: the evaluation's numbers, run ids, data, image."""
    tags = {"deploy.run_id": run_id}
    if (running_image := image()) is not None:
        tags["deploy.image"] = running_image
    if evaluation is not None:
        summary = evaluation.model_dump(
            include={
                "reason", "improvement", "improvement_low", "improvement_high", "confidence",
                "champion_version", "champion_run_id", "data_fingerprint", "test_rows",
            }
        )  # fmt: skip
        summary |= {f"test_{k}": v for k, v in evaluation.metrics.model_dump().items()}
        tags |= {f"evaluation.{k}": "none" if v is None else str(v) for k, v in summary.items()}
    return tags | dict(extra)


def deploy(args: argparse.Namespace) -> DeployResult:
    if args.rollback:
        with reaching_mlflow():
            return rollback(args.model_name)
    if not args.run_id:
        raise StepError("--run-id is required unless --rollback is given")
    rows = sample_rows(args.data_path)  # a bad --data-path fails before the registry is touched
    with reaching_mlflow():
        model_uri = run_model_uri(args.run_id)
        evaluation = evaluation_for(args.run_id, args.model_name)
        if evaluation is not None and not evaluation.should_deploy and not args.force:
            raise StepError(
                f"the evaluation of run {args.run_id} for {args.model_name} decided not to "
                f"deploy ({evaluation.reason}); pass --force to promote it anyway"
            )
        expected, check = compare_and_set(args, evaluation)
        if check:
            check_champion(args.model_name, expected, args.run_id)
        version, registered = register_once(args.model_name, args.run_id, model_uri)
        tag_version(args.model_name, version, version_tags(args.run_id, evaluation, args.tag))
        smoked = smoke_test(f"models:/{args.model_name}/{version}", rows)
        move = move_champion(args.model_name, version, expected, check)
    log.info("%s champion -> v%d (previous %s)", args.model_name, version, move.previous)
    return DeployResult(
        action="deploy",
        model_name=args.model_name,
        version=version,
        alias=CHAMPION,
        previous_version=move.previous,
        run_id=args.run_id,
        registered=registered,
        alias_moved=move.moved,
        smoke_test_rows=smoked,
    )


def rollback(model_name: str) -> DeployResult:
    """Swap ``champion`` and ``previous_champion`` (a second rollback undoes the first), after
    the version rolled back to passes the smoke test on its own input example."""
    target, current = rollback_target(model_name)
    smoked = smoke_test(f"models:/{model_name}/{target}", None)
    done = swap_champion(model_name, target, current)
    log.info("%s champion rolled back v%d -> v%d", model_name, current, target)
    return DeployResult(
        action="rollback",
        model_name=model_name,
        version=done.version,
        alias=CHAMPION,
        previous_version=done.previous,
        run_id=done.run_id,
        registered=False,
        alias_moved=True,
        smoke_test_rows=smoked,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_step("deploy", build_parser(), deploy, argv)


def main_entry() -> None:
    raise SystemExit(main())
