"""``python -m deployer --run-id ID --model-name NAME`` deploys a run that the evaluator judged for
this model and decided to deploy (anything else needs ``--force``): it registers the run's model
(once: a rerun reuses the version), tags the version with the evaluation's decision, smoke-tests
it, and points ``champion`` at it if ``champion`` is still the version the evaluation compared
against, keeping the old one as ``previous_champion``. ``python -m deployer --rollback
--model-name NAME`` swaps the two aliases back (after the same smoke test)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from common.step import StepArgumentParser, UsageError, run_step, script_name

if TYPE_CHECKING:
    from contract.results import DeployResult
    from deployer.job import DeployConfig

# The job (MLflow, pandas) is imported once the flags are parsed, so --help and usage errors
# are quick.
PROG = "python -m deployer"


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


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The deployer's flags in argument groups; ``prog``: the command in the usage line."""
    p = StepArgumentParser(prog=prog, description=__doc__)
    model = p.add_argument_group("model", "the registered model whose aliases move")
    model.add_argument("--model-name", required=True, metavar="NAME", help="registered model name")
    add_deploy_flags(p.add_argument_group("deploy", "make a run's model the champion"))
    rollback = p.add_argument_group("rollback", "undo the last deploy")
    rollback.add_argument(
        "--rollback", action="store_true", help="move champion back to previous_champion"
    )
    return p


def add_deploy_flags(group: argparse._ArgumentGroup) -> None:
    """The flags of a deploy (a rollback refuses them)."""
    group.add_argument(
        "--run-id",
        metavar="ID",
        help="MLflow run whose model becomes champion (required unless --rollback)",
    )
    group.add_argument(
        "--expected-champion-version",
        type=expected_version,
        default=argparse.SUPPRESS,
        metavar="N|none",
        help="refuse unless champion is still this version (the evaluation's champion_version;"
        " default: the evaluation recorded on the run; with --force and no evaluation: the "
        "champion when the deploy starts)",
    )
    group.add_argument(
        "--data-path",
        metavar="URI",
        help="a preprocess output whose raw sample rows the smoke test predicts; without it, "
        "the model's own input example",
    )
    group.add_argument(
        "--tag",
        type=tag,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra version tag (repeatable)",
    )
    group.add_argument(
        "--force",
        action="store_true",
        help="deploy a run without an evaluation for this model, or one whose evaluation decided "
        "not to deploy (champion still moves only if it is the expected version)",
    )


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
    from deployer.job import DeployConfig

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


def run(args: argparse.Namespace) -> DeployResult:
    """Deploy, or roll back, as the parsed flags say."""
    from deployer.job import deploy

    return deploy(resolve(args))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run_step("deploy", build_parser(prog), run, argv)


def main_entry() -> None:
    """The ``tabular-deploy`` console script."""
    raise SystemExit(main(prog=script_name()))
