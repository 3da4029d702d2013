"""Deploy a run's model (register once, tag, smoke-test, move ``champion`` under a
compare-and-set) or roll ``champion`` back to ``previous_champion``.

A deploy fails closed: the run needs an evaluation for this model that decided to deploy, or
``--force``; and ``champion`` moves only if it is still the version the deploy expects: the
one the evaluation compared with, ``--expected-champion-version``, or (``--force`` without an
evaluation) the champion as it was when the deploy started."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common.evaluation_record import RESULT_FILE, recorded_evaluation
from common.step import StepError
from common.tracking import (
    CHAMPION,
    first_line,
    image,
    reaching_mlflow,
    run_model_uri,
    shown_tracking_uri,
)
from contract.results import DeployResult, EvaluateResult
from deployer.registry import (
    Expected,
    alias_number,
    check_champion,
    move_champion,
    register_once,
    rollback_target,
    swap_champion,
    tag_version,
)
from deployer.smoke import sample_rows, smoke_test
from tabular_model.integrity import ModelIntegrityError, verified_local_copy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployConfig:
    """What to deploy (``run_id``) or roll back, and the checks around it."""

    model_name: str
    run_id: str | None = None
    rollback: bool = False
    # The champion version the evaluation compared with (None: no champion). Unset
    # (``expect_champion`` False): the evaluation recorded on the run says it.
    expected_champion: int | None = None
    expect_champion: bool = False
    data_path: str | None = None  # a preprocess output with raw sample rows for the smoke test
    tags: tuple[tuple[str, str], ...] = ()
    force: bool = False  # deploy without an evaluation, or one that decided not to


def evaluation_for(run_id: str, model_name: str) -> EvaluateResult | None:
    """The evaluation recorded on the run, when it was made for this registered model."""
    evaluation = recorded_evaluation(run_id)
    if evaluation is not None and evaluation.model_name != model_name:
        log.warning(
            "run %s was last evaluated for %s, not %s", run_id, evaluation.model_name, model_name
        )
        return None
    return evaluation


def require_clearance(config: DeployConfig, evaluation: EvaluateResult | None) -> None:
    """Refuse a run without an evaluation for this model, or one whose evaluation decided not
    to deploy it, unless ``--force`` is given."""
    if config.force:
        if evaluation is None:
            log.warning("deploying run %s without an evaluation (--force)", config.run_id)
        return
    if evaluation is None:
        raise StepError(
            f"run {config.run_id} has no evaluation for {config.model_name} at "
            f"{shown_tracking_uri()} (no {RESULT_FILE} for it on the run): evaluate it first "
            "(python -m evaluator), or pass --force to deploy it without one"
        )
    if not evaluation.should_deploy:
        raise StepError(
            f"the evaluation of run {config.run_id} for {config.model_name} decided not to "
            f"deploy ({evaluation.reason}); pass --force to promote it anyway"
        )


def expected_champion(config: DeployConfig, evaluation: EvaluateResult | None) -> Expected:
    """The champion version this deploy may replace: ``--expected-champion-version``, else the
    one the evaluation compared with, else (``--force`` without an evaluation) the champion
    as it is now, so that a deploy finishing first in between is not overwritten."""
    if config.expect_champion:
        return Expected(config.expected_champion, "--expected-champion-version")
    if evaluation is not None:
        return Expected(evaluation.champion_version, "the champion its evaluation compared with")
    current = alias_number(config.model_name, CHAMPION)
    return Expected(
        current, "the champion when this deploy started", "check the registry before deploying"
    )


def version_tags(
    config: DeployConfig, run_id: str, evaluation: EvaluateResult | None
) -> dict[str, str]:
    """The decision behind this version: the evaluation's numbers, run ids, data, image, and
    whether it was forced; then the ``--tag`` values."""
    tags = {"deploy.run_id": run_id}
    if (running_image := image()) is not None:
        tags["deploy.image"] = running_image
    if config.force:
        tags["deploy.forced"] = "true"
    if evaluation is not None:
        summary = evaluation.model_dump(
            include={
                "reason", "improvement", "improvement_low", "improvement_high", "confidence",
                "champion_version", "champion_run_id", "champion_problem", "data_fingerprint",
                "test_rows",
            }
        )  # fmt: skip
        summary |= {f"test_{k}": v for k, v in evaluation.metrics.model_dump().items()}
        tags |= {f"evaluation.{k}": "none" if v is None else str(v) for k, v in summary.items()}
    return tags | dict(config.tags)


def check_integrity(run_id: str, model_uri: str) -> None:
    """Refuse, before anything is registered, a model whose files differ from the sha256 its
    run recorded when it was logged, or that has no such record."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            verified_local_copy(model_uri, Path(folder))
        except ModelIntegrityError as exc:
            raise StepError(
                f"--run-id {run_id}: its model fails its integrity check, not deployed: "
                f"{first_line(exc)}"
            ) from exc


def deploy(config: DeployConfig) -> DeployResult:
    """Deploy ``config.run_id`` as the champion, or roll back."""
    if config.rollback:
        with reaching_mlflow():
            return rollback(config.model_name)
    run_id = config.run_id
    if not run_id:
        raise StepError("--run-id is required unless --rollback is given")
    rows = sample_rows(config.data_path)  # a bad --data-path fails before the registry is touched
    with reaching_mlflow():
        model_uri = run_model_uri(run_id)
        evaluation = evaluation_for(run_id, config.model_name)
        require_clearance(config, evaluation)
        expected = expected_champion(config, evaluation)
        check_champion(config.model_name, expected, run_id)
        check_integrity(run_id, model_uri)
        version, registered = register_once(config.model_name, run_id, model_uri)
        tag_version(config.model_name, version, version_tags(config, run_id, evaluation))
        smoked = smoke_test(f"models:/{config.model_name}/{version}", rows)
        move = move_champion(config.model_name, version, expected)
    log.info("%s champion -> v%d (previous %s)", config.model_name, version, move.previous)
    return DeployResult(
        action="deploy",
        model_name=config.model_name,
        version=version,
        alias=CHAMPION,
        previous_version=move.previous,
        run_id=run_id,
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
