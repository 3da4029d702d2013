"""``python -m deployer --run-id ID --model-name NAME`` deploys a run that the evaluator judged for
this model and decided to deploy (anything else needs ``--force``): it registers the run's model
(once: a rerun reuses the version), tags the version with the evaluation's decision, smoke-tests
it, and points ``champion`` at it if ``champion`` is still the version the evaluation compared
against, keeping the old one as ``previous_champion``. ``python -m deployer --rollback
--model-name NAME`` swaps the two aliases back (after the same smoke test)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from common.step import StepArgumentParser, UsageError, run_step
from deployer.job import DeployConfig, deploy


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
        " default: the evaluation recorded on the run; with --force and no evaluation: the "
        "champion when the deploy starts)",
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
        help="deploy a run without an evaluation for this model, or one whose evaluation decided "
        "not to deploy (champion still moves only if it is the expected version)",
    )
    return p


def resolve(args: argparse.Namespace) -> DeployConfig:
    """The checked configuration; a ``UsageError`` when a deploy lacks --run-id, or when a
    rollback is given a flag that only a deploy uses."""
    if args.rollback:
        deploy_only = {
            "--run-id": args.run_id is not None,
            # No default: present only when given ("none" reads as None).
            "--expected-champion-version": hasattr(args, "expected_champion_version"),
            "--data-path": args.data_path is not None,
            "--force": args.force,
            "--tag": bool(args.tag),
        }
        if unused := [flag for flag, given in deploy_only.items() if given]:
            raise UsageError(
                f"--rollback does not use {', '.join(unused)} (a rollback swaps champion and "
                "previous_champion of --model-name)"
            )
    elif not args.run_id:
        raise UsageError("--run-id is required unless --rollback is given")
    return DeployConfig(
        model_name=args.model_name,
        run_id=args.run_id,
        rollback=args.rollback,
        expected_champion=getattr(args, "expected_champion_version", None),
        expect_champion=hasattr(args, "expected_champion_version"),
        data_path=args.data_path,
        tags=tuple(args.tag),
        force=args.force,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_step("deploy", build_parser(), lambda args: deploy(resolve(args)), argv)


def main_entry() -> None:
    raise SystemExit(main())
