"""The promotion decision. Pure: scores in, decision out (``decide`` for classification,
``decide_regression`` for regression)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from contract.results import DeployReason
from evaluator.thresholds import Thresholds as Thresholds

# Why a champion that exists has no scores: it cannot score this data (other columns, types or
# classes, or a model of the other task), or it is broken (does not load, or predicts no usable
# output).
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


@dataclass(frozen=True)
class RegressionScores:
    """One regression model's numbers on the test rows that the gate looks at (target units)."""

    rmse: float
    r2: float
    worst_slice_rmse: float | None  # None: no slice reached the minimum size


@dataclass(frozen=True)
class RegressionComparison:
    """The champion's scores on the same rows and the paired interval of the RMSE reduction
    (champion's RMSE - candidate's: positive is better)."""

    champion: RegressionScores
    improvement_low: float
    improvement_high: float


def decide_regression(
    candidate: RegressionScores,
    comparison: RegressionComparison | None,
    thresholds: Thresholds,
    champion_unscored: ChampionUnscored | None = None,
) -> Decision:
    """Deploy when the candidate's R² reaches ``min_r2`` and, against a champion, the lower
    bound of the RMSE reduction's interval, as a fraction of the champion's RMSE, exceeds
    ``min_improvement`` (a fraction works across targets of any scale; an absolute number of
    target units would not) while its worst slice's RMSE is at most the champion's worst times
    ``1 + slice_tolerance``. The order of the reasons is classification's; there is no
    calibration check."""
    if candidate.r2 < thresholds.min_r2:
        return Decision(False, "below_floor")
    if champion_unscored is not None:
        return Decision(False, champion_unscored)
    if comparison is None:
        return Decision(True, "first_model")
    if not relative_reduction(comparison) > thresholds.min_improvement:
        return Decision(False, "not_better")
    if slice_error_regressed(candidate, comparison.champion, thresholds.slice_tolerance):
        return Decision(False, "slice_regression")
    return Decision(True, "promoted")


def relative_reduction(comparison: RegressionComparison) -> float:
    """The interval's lower bound as a fraction of the champion's RMSE. A perfect champion
    (RMSE 0) cannot be bettered: a tie is 0, anything worse is minus infinity."""
    low, champion_rmse = comparison.improvement_low, comparison.champion.rmse
    if champion_rmse > 0:
        return low / champion_rmse
    return 0.0 if low >= 0 else -math.inf


def slice_error_regressed(
    candidate: RegressionScores, champion: RegressionScores, tolerance: float
) -> bool:
    """The candidate's worst slice RMSE exceeds the champion's worst by more than the fraction
    ``tolerance`` of it (no slices on either side: nothing to compare)."""
    if candidate.worst_slice_rmse is None or champion.worst_slice_rmse is None:
        return False
    return candidate.worst_slice_rmse > champion.worst_slice_rmse * (1 + tolerance)
