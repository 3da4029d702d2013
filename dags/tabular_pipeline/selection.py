"""Pick the sweep winner from the trials' results (validation metrics only; the test split stays
with the evaluator, so the winner's curse stays out of the deploy decision)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from tabular_pipeline.results import ResultError, require_result, task_of

log = logging.getLogger(__name__)


def checked_trials(results: Sequence[Any], sources: Sequence[str]) -> list[dict[str, Any] | None]:
    """Each trial's train result, or None when it failed: no result, or one that breaks the
    train schema (logged, naming its source)."""
    checked: list[dict[str, Any] | None] = []
    for source, result in zip(sources, results, strict=True):
        try:
            checked.append(None if result is None else require_result("train", result, source))
        except ResultError as exc:
            log.warning("ignoring %s: %s", source, exc)
            checked.append(None)
    return checked


def select_best(
    trials: Sequence[dict[str, Any] | None], min_success_fraction: float
) -> dict[str, Any]:
    """The successful trial with the best validation score (``score``: the highest accuracy,
    or for regression the lowest RMSE); ties go to the lower validation loss, then to the lower
    run id, so the choice is deterministic.

    ``trials`` come from ``checked_trials`` (None = failed). Fewer successes than
    ``min_success_fraction`` of all trials (and never none), or trials of different tasks, is a
    ResultError.
    """
    if not 0.0 <= min_success_fraction <= 1.0:
        raise ValueError(f"min_success_fraction must be within [0, 1]; got {min_success_fraction}")
    succeeded = [t for t in trials if t is not None]
    # Rounded first, so that float noise (25 * 0.28 = 7.000000000000001) asks for no extra trial.
    needed = max(1, math.ceil(round(len(trials) * min_success_fraction, 9)))
    if len(succeeded) < needed:
        raise ResultError(
            f"only {len(succeeded)} of {len(trials)} sweep trials succeeded; {needed} needed"
        )
    tasks = {task_of(r) for r in succeeded}
    if len(tasks) > 1:
        raise ResultError(f"the sweep's trials trained different tasks {sorted(tasks)}")
    return min(succeeded, key=lambda r: (-score(r), r["loss"], r["run_id"]))


def score(result: dict[str, Any]) -> float:
    """Higher is better: a train result's validation accuracy, or minus its RMSE."""
    return -float(result["rmse"]) if task_of(result) == "regression" else float(result["accuracy"])


def score_text(result: dict[str, Any]) -> str:
    """The validation score as the logs and the summary show it."""
    if task_of(result) == "regression":
        return f"validation RMSE {result['rmse']:.6g}"
    return f"validation accuracy {result['accuracy']:.4f}"
