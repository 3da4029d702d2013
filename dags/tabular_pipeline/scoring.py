"""What the ``tabular_training`` and ``tabular_scoring`` DAGs share about scoring: the asset that
stands for "a new champion was deployed", the deploy task's hook that emits it only when the
champion moved, and the scorer's CPU pod.

The deploy task declares an ``AssetAlias`` as its outlet and adds an event for the champion's
asset only when its result says the alias moved: a plain ``Asset`` outlet would emit an event on
every successful deploy, a rerun that found the version already champion included. The
scoring DAG is scheduled on the asset itself (events added through an alias trigger it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk import Asset, AssetAlias

from tabular_pipeline.config import PipelineConfig
from tabular_pipeline.pods import step_pod_kwargs

SCORE_STEP = "score"
# The run's date in any run: an asset-triggered run has no logical date (so no ``ds``), only
# the time it was queued to run after.
RUN_DATE = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"


def champion_asset(config: PipelineConfig) -> Asset:
    """The registered model's ``champion``: an event means a deploy moved it to a new version."""
    name = config.model_name
    return Asset(name=f"champion/{name}", uri=f"mlflow-registry://{name}/champion")


def new_champion_alias(config: PipelineConfig) -> AssetAlias:
    """The deploy task's outlet: events are added to it only when the champion moved."""
    return AssetAlias(name=f"new-champion/{config.model_name}")


def announce_new_champion(config: PipelineConfig) -> Callable[[Any, Any], None]:
    """The deploy task's ``post_execute`` hook: an event for ``champion_asset`` (with the new
    version in its extra) when the deploy result says the alias moved, none otherwise."""
    asset, alias = champion_asset(config), new_champion_alias(config)

    def announce(context: Any, result: Any) -> None:
        if not isinstance(result, dict) or result.get("action") != "deploy":
            return
        if not result.get("alias_moved"):
            return
        extra = {k: result.get(k) for k in ("model_name", "version", "previous_version", "run_id")}
        context["outlet_events"][alias].add(asset, extra=extra)

    return announce


def with_run_date(template: str) -> str:
    """``{{ ds }}`` in a configured URI, as a template that renders in asset-triggered runs too."""
    return template.replace("{{ ds }}", RUN_DATE)


def scoring_pod_kwargs(config: PipelineConfig) -> dict[str, Any]:
    """The scorer's pod: the pipeline's image, security, env and secrets, with the resources
    and timeout of the ``scoring`` section; no GPU (only the trainer's pods ask for one)."""
    scoring = config.scoring
    # Not validated again: the step tables get one more entry, from the checked section.
    with_score = config.model_copy(
        update={
            "resources": {**config.resources, SCORE_STEP: scoring.resources},
            "execution_timeout_minutes": {
                **config.execution_timeout_minutes,
                SCORE_STEP: scoring.execution_timeout_minutes,
            },
        }
    )
    return step_pod_kwargs(with_score, SCORE_STEP)


def scorer_arguments(config: PipelineConfig) -> list[str]:
    """The scorer's flags from the config (URIs templated with the run's date)."""
    scoring = config.scoring
    arguments = [
        "--model", f"models:/{config.model_name}@champion",
        "--input", with_run_date(scoring.input),
        "--output", with_run_date(scoring.output),
        "--batch-rows", str(scoring.batch_rows),
    ]  # fmt: skip
    if scoring.keep_columns:
        arguments += ["--keep-columns", *scoring.keep_columns]
    return arguments
