"""
### tabular_scoring

Scores a file with the registered model's `champion` every time the `tabular_training` DAG's
deploy promotes a new one (the `champion/<model>` asset), and also on `scoring.schedule` when the
config sets a cron expression.

1. **score** (CPU pod): `python -m scorer --model models:/<model>@champion --input ... --output
   ...`: the champion is checked against its integrity record, then the input is scored batch
   by batch into the output file (parquet or CSV) with a manifest beside it.
2. **check_result**: the scorer's result, checked against its contract.

Input and output come from the config's `scoring` section; `{{ ds }}` in them is the run's date.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, task
from tabular_pipeline.config import PipelineConfig, load_config
from tabular_pipeline.pods import StepPodOperator
from tabular_pipeline.scoring import champion_asset, scorer_arguments, scoring_pod_kwargs

log = logging.getLogger(__name__)

CONFIG = load_config()


def schedule_of(config: PipelineConfig) -> Any:
    """Every new champion, and the cron schedule too when one is configured."""
    asset = champion_asset(config)
    if config.scoring.schedule is None:
        return asset
    timetable = CronTriggerTimetable(config.scoring.schedule, timezone="UTC")
    return AssetOrTimeSchedule(timetable=timetable, assets=asset)


@task
def check_result(scored: Any) -> dict[str, Any]:
    """The scorer's result, checked against the contract: a missing one fails here, loudly."""
    from tabular_pipeline.results import require_result

    result = require_result("score", scored, "score")
    log.info(
        "scored %d rows with %s v%d -> %s",
        result["rows"], result["model_name"], result["model_version"], result["output_uri"],
    )  # fmt: skip
    return result


with DAG(
    dag_id="tabular_scoring",
    schedule=schedule_of(CONFIG),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["ml", "scoring"],
    doc_md=__doc__,
    default_args={"owner": "ml-platform"},
) as dag:
    score = StepPodOperator(
        task_id="score", arguments=scorer_arguments(CONFIG), **scoring_pod_kwargs(CONFIG)
    )
    check_result(score.output)
