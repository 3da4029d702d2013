"""The promotion decision: floor, a champion that could not be scored (incompatible or
unusable), first model, the interval's lower bound, then the worst slice and calibration
against the champion's."""

from __future__ import annotations

import pytest

from evaluator.gate import ChampionUnscored, Comparison, Decision, Scores, Thresholds, decide

GOOD = Scores(accuracy=0.85, worst_slice_accuracy=0.75, ece=0.03)
CHAMPION = Scores(accuracy=0.80, worst_slice_accuracy=0.74, ece=0.03)
DEFAULTS = Thresholds()


def against(champion: Scores = CHAMPION, low: float = 0.01, high: float = 0.09) -> Comparison:
    return Comparison(champion, improvement_low=low, improvement_high=high)


def test_below_floor_without_champion() -> None:
    assert decide(GOOD, None, Thresholds(min_accuracy=0.9)) == Decision(False, "below_floor")


def test_below_floor_wins_over_a_better_model() -> None:
    assert decide(GOOD, against(), Thresholds(min_accuracy=0.9)).reason == "below_floor"


def test_exactly_at_the_floor_is_not_below_it() -> None:
    assert decide(GOOD, None, Thresholds(min_accuracy=0.85)) == Decision(True, "first_model")


def test_first_model_ignores_min_improvement() -> None:
    assert decide(GOOD, None, Thresholds(min_improvement=0.5)) == Decision(True, "first_model")


@pytest.mark.parametrize("unscored", ["baseline_incompatible", "champion_unusable"])
def test_a_champion_that_could_not_be_scored_is_never_replaced_automatically(
    unscored: ChampionUnscored,
) -> None:
    assert decide(GOOD, None, DEFAULTS, unscored) == Decision(False, unscored)


@pytest.mark.parametrize("unscored", ["baseline_incompatible", "champion_unusable"])
def test_below_floor_wins_over_a_champion_that_could_not_be_scored(
    unscored: ChampionUnscored,
) -> None:
    assert decide(GOOD, None, Thresholds(min_accuracy=0.9), unscored).reason == "below_floor"


def test_promoted_when_the_whole_interval_is_above_zero() -> None:
    assert decide(GOOD, against(low=0.001), DEFAULTS) == Decision(True, "promoted")


@pytest.mark.parametrize("low", [0.0, -0.02])
def test_an_interval_reaching_zero_is_not_better(low: float) -> None:
    assert decide(GOOD, against(low=low), DEFAULTS) == Decision(False, "not_better")


def test_lower_bound_must_exceed_min_improvement() -> None:
    thresholds = Thresholds(min_improvement=0.02)
    assert decide(GOOD, against(low=0.02), thresholds).reason == "not_better"
    assert decide(GOOD, against(low=0.021), thresholds).reason == "promoted"


def test_a_worst_slice_far_below_the_champions_is_a_slice_regression() -> None:
    weak_slice = Scores(accuracy=0.85, worst_slice_accuracy=0.60, ece=0.03)
    assert decide(weak_slice, against(), DEFAULTS) == Decision(False, "slice_regression")


def test_a_worst_slice_within_tolerance_is_accepted() -> None:
    slightly = Scores(accuracy=0.85, worst_slice_accuracy=0.70, ece=0.03)
    assert decide(slightly, against(), Thresholds(slice_tolerance=0.05)).reason == "promoted"
    assert decide(slightly, against(), Thresholds(slice_tolerance=0.03)).reason == (
        "slice_regression"
    )


def test_no_slices_on_either_side_skips_the_slice_check() -> None:
    no_slices = Scores(accuracy=0.85, worst_slice_accuracy=None, ece=0.03)
    assert decide(no_slices, against(), DEFAULTS).reason == "promoted"
    champion = Scores(accuracy=0.80, worst_slice_accuracy=None, ece=0.03)
    assert decide(GOOD, against(champion), DEFAULTS).reason == "promoted"


def test_worse_calibration_beyond_tolerance_is_a_calibration_regression() -> None:
    overconfident = Scores(accuracy=0.85, worst_slice_accuracy=0.75, ece=0.10)
    assert decide(overconfident, against(), DEFAULTS) == Decision(False, "calibration_regression")
    assert decide(overconfident, against(), Thresholds(calibration_tolerance=0.08)).should_deploy


def test_not_better_is_reported_before_slice_and_calibration_problems() -> None:
    everything_wrong = Scores(accuracy=0.85, worst_slice_accuracy=0.1, ece=0.5)
    assert decide(everything_wrong, against(low=-0.01), DEFAULTS).reason == "not_better"
    assert decide(everything_wrong, against(), DEFAULTS).reason == "slice_regression"
