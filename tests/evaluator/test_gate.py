"""The promotion decision: floor first, then the first model, then strict improvement."""

from __future__ import annotations

import pytest

from evaluator.gate import Decision, decide


def test_below_floor_without_champion() -> None:
    assert decide(0.6, None, 0.7, 0.0) == Decision(False, "below_floor", None)


def test_below_floor_wins_over_a_better_model() -> None:
    decision = decide(0.65, 0.5, 0.7, 0.0)
    assert (decision.should_deploy, decision.reason) == (False, "below_floor")
    assert decision.improvement == pytest.approx(0.15)


def test_exactly_at_the_floor_is_not_below_it() -> None:
    assert decide(0.7, None, 0.7, 0.0) == Decision(True, "first_model", None)


def test_first_model() -> None:
    assert decide(0.8, None, 0.0, 0.0) == Decision(True, "first_model", None)


def test_first_model_ignores_min_improvement() -> None:
    assert decide(0.8, None, 0.0, 0.5) == Decision(True, "first_model", None)


def test_promoted() -> None:
    decision = decide(0.85, 0.8, 0.0, 0.0)
    assert (decision.should_deploy, decision.reason) == (True, "promoted")
    assert decision.improvement == pytest.approx(0.05)


def test_promoted_over_min_improvement() -> None:
    decision = decide(0.9, 0.8, 0.5, 0.05)
    assert (decision.should_deploy, decision.reason) == (True, "promoted")


def test_not_better() -> None:
    decision = decide(0.79, 0.8, 0.0, 0.0)
    assert (decision.should_deploy, decision.reason) == (False, "not_better")
    assert decision.improvement == pytest.approx(-0.01)


def test_a_tie_is_not_better() -> None:
    assert decide(0.8, 0.8, 0.0, 0.0) == Decision(False, "not_better", 0.0)


def test_gain_below_min_improvement_is_not_better() -> None:
    decision = decide(0.82, 0.8, 0.0, 0.05)
    assert (decision.should_deploy, decision.reason) == (False, "not_better")
    assert decision.improvement == pytest.approx(0.02)


def test_gain_equal_to_min_improvement_is_not_better() -> None:
    # "more than min_improvement": 0.75 - 0.5 == 0.25 exactly in binary floating point
    assert decide(0.75, 0.5, 0.0, 0.25) == Decision(False, "not_better", 0.25)
