"""``python -m deployer --run-id ID --model-name NAME`` registers the run's model (once: a rerun
reuses the version) and points ``champion`` at it, keeping the old one as ``previous_champion``.
``python -m deployer --rollback --model-name NAME`` swaps the two aliases back."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from contract.results import DeployResult
from contract.step import StepArgumentParser, StepError, run_step
from contract.tracking import (
    CHAMPION,
    PREVIOUS_CHAMPION,
    alias_version,
    configure_mlflow,
    run_model_uri,
    tracking_uri,
)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog="python -m deployer", description=__doc__)
    p.add_argument("--run-id", help="MLflow run whose model becomes champion")
    p.add_argument("--model-name", required=True, help="registered model name")
    p.add_argument(
        "--rollback", action="store_true", help="move champion back to previous_champion"
    )
    return p


def register_once(model_name: str, run_id: str) -> int:
    """The version of ``model_name`` holding this run's model, registering it if none does."""
    mlflow = configure_mlflow()
    client = mlflow.MlflowClient()
    # Filter by run id only: a model name may hold quotes that the filter grammar cannot escape.
    existing = [
        v for v in client.search_model_versions(f"run_id = '{run_id}'") if v.name == model_name
    ]
    if existing:
        version = min(int(v.version) for v in existing)
        log.info("run %s is already %s v%d", run_id, model_name, version)
        return version
    registered = mlflow.register_model(run_model_uri(run_id), model_name)
    return int(registered.version)


def move_champion(model_name: str, version: int) -> int | None:
    """Point ``champion`` at ``version``; the old champion becomes ``previous_champion``."""
    client = configure_mlflow().MlflowClient()
    current = alias_version(model_name, CHAMPION)
    previous = None if current is None else int(current.version)
    if previous == version:
        log.info("%s v%d is already champion", model_name, version)
        before = alias_version(model_name, PREVIOUS_CHAMPION)
        return None if before is None else int(before.version)
    if previous is not None:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(previous))
    client.set_registered_model_alias(model_name, CHAMPION, str(version))
    return previous


def deploy(args: argparse.Namespace) -> DeployResult:
    if args.rollback:
        return rollback(args.model_name)
    if not args.run_id:
        raise StepError("--run-id is required unless --rollback is given")
    version = register_once(args.model_name, args.run_id)
    previous = move_champion(args.model_name, version)
    log.info("%s champion -> v%d (previous %s)", args.model_name, version, previous)
    return DeployResult(
        action="deploy",
        model_name=args.model_name,
        version=version,
        alias=CHAMPION,
        previous_version=previous,
        run_id=args.run_id,
    )


def rollback(model_name: str) -> DeployResult:
    """Swap ``champion`` and ``previous_champion`` (a second rollback undoes the first)."""
    previous = alias_version(model_name, PREVIOUS_CHAMPION)
    current = alias_version(model_name, CHAMPION)
    if previous is None or current is None:
        raise StepError(
            f"{model_name} at {tracking_uri()} has no {PREVIOUS_CHAMPION} to roll back to"
        )
    client = configure_mlflow().MlflowClient()
    client.set_registered_model_alias(model_name, CHAMPION, str(previous.version))
    client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(current.version))
    log.info("%s champion rolled back v%s -> v%s", model_name, current.version, previous.version)
    return DeployResult(
        action="rollback",
        model_name=model_name,
        version=int(previous.version),
        alias=CHAMPION,
        previous_version=int(current.version),
        run_id=previous.run_id,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_step("deploy", build_parser(), deploy, argv)


def main_entry() -> None:
    raise SystemExit(main())
