"""Pick the sweep winner from trial results (validation metrics only; the test split stays with
the evaluator). Pure and light, so the orchestrator can use it as is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contract.xcom import ResultError, validate_payload


def select_best(
    trials: Sequence[dict[str, Any] | None], min_success_fraction: float = 0.5
) -> dict[str, Any]:
    """The successful trial with the highest validation accuracy; ties go to the lower
    validation loss, then to the lower run id, so the choice is deterministic.

    Failed trials (None or results that break the train schema) are ignored; fewer successes
    than ``min_success_fraction`` of all trials is an error.
    """
    succeeded = []
    for trial in trials:
        try:
            succeeded.append(validate_payload("train", trial))
        except ResultError:
            continue
    needed = max(1, -(-len(trials) * min_success_fraction // 1))  # ceil, at least one
    if len(succeeded) < needed:
        raise ResultError(
            f"only {len(succeeded)} of {len(trials)} sweep trials succeeded; {int(needed)} needed"
        )
    return min(succeeded, key=lambda r: (-r["accuracy"], r["loss"], r["run_id"]))
