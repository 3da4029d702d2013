"""The promotion decision. Pure: scores in, decision out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contract.results import DeployReason
from evaluator.thresholds import Thresholds as Thresholds

# Why a champion that exists has no scores: it cannot score this data (other columns, types or
# classes), or it is broken (does not load, or predicts no usable probabilities).
ChampionUnscored = Literal["baseline_incompatible", "champion_unusable"]


@dataclass(frozen=True)
class Scores:
    """One model's numbers on the test rows that the gate looks at."""

    accuracy: float
    worst_slice_accuracy: float | None  # None: no slice reached the minimum size
    ece: float


@dataclass(frozen=True)
class Comparison:
    """The champion's scores on the same rows and the paired interval of the accuracy gain."""

    champion: Scores
    improvement_low: float
    improvement_high: float


@dataclass(frozen=True)
class Decision:
    should_deploy: bool
    reason: DeployReason


def decide(
    candidate: Scores,
    comparison: Comparison | None,
    thresholds: Thresholds,
    champion_unscored: ChampionUnscored | None = None,
) -> Decision:
    """Deploy when the candidate reaches ``min_accuracy`` and, against a champion, the lower
    bound of the gain's interval exceeds ``min_improvement`` while neither the worst slice nor
    the calibration error is worse than the champion's beyond its tolerance. A champion that
    could not be scored (``champion_unscored``) is never replaced automatically: a person
    decides. Checks run in the order of the reasons: below_floor, baseline_incompatible or
    champion_unusable, first_model, not_better, slice_regression, calibration_regression,
    promoted."""
    if candidate.accuracy < thresholds.min_accuracy:
        return Decision(False, "below_floor")
    if champion_unscored is not None:
        return Decision(False, champion_unscored)
    if comparison is None:
        return Decision(True, "first_model")
    if not comparison.improvement_low > thresholds.min_improvement:
        return Decision(False, "not_better")
    if slice_regressed(candidate, comparison.champion, thresholds.slice_tolerance):
        return Decision(False, "slice_regression")
    if candidate.ece > comparison.champion.ece + thresholds.calibration_tolerance:
        return Decision(False, "calibration_regression")
    return Decision(True, "promoted")


def slice_regressed(candidate: Scores, champion: Scores, tolerance: float) -> bool:
    """The candidate's worst slice is less accurate than the champion's worst by more than
    ``tolerance`` (no slices on either side: nothing to compare)."""
    if candidate.worst_slice_accuracy is None or champion.worst_slice_accuracy is None:
        return False
    return candidate.worst_slice_accuracy < champion.worst_slice_accuracy - tolerance
