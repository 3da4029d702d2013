"""The promotion decision. Pure: metrics in, decision out."""

from __future__ import annotations

from dataclasses import dataclass

from contract.results import DeployReason


@dataclass(frozen=True)
class Decision:
    should_deploy: bool
    reason: DeployReason
    improvement: float | None


def decide(
    candidate_accuracy: float,
    champion_accuracy: float | None,
    min_accuracy: float,
    min_improvement: float,
) -> Decision:
    """Deploy when the candidate reaches ``min_accuracy`` and beats the champion (if any) by
    more than ``min_improvement``."""
    improvement = None if champion_accuracy is None else candidate_accuracy - champion_accuracy
    if candidate_accuracy < min_accuracy:
        return Decision(False, "below_floor", improvement)
    if improvement is None:
        return Decision(True, "first_model", None)
    if improvement > min_improvement:
        return Decision(True, "promoted", improvement)
    return Decision(False, "not_better", improvement)
