"""Sweep winner selection: trial results are checked against the train schema (bad ones count as
failed and are logged), the winner has the highest validation accuracy with a deterministic
tie-break, and too few successes fail the selection."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from tabular_pipeline.results import ResultError
from tabular_pipeline.selection import checked_trials, select_best

from tests.contract.conftest import TRAIN_FIELDS


def trial(run_id: str, accuracy: float, loss: float) -> dict[str, Any]:
    """A valid train result (as the trainer pushes it) with the fields selection reads."""
    return {
        **TRAIN_FIELDS,
        "schema_version": 1,
        "run_id": run_id,
        "accuracy": accuracy,
        "loss": loss,
    }


def regression_trial(run_id: str, rmse: float, loss: float) -> dict[str, Any]:
    """A valid regression train result (schema version 2)."""
    return {
        **TRAIN_FIELDS,
        "schema_version": 2,
        "task": "regression",
        "run_id": run_id,
        "accuracy": None,
        "f1_score": None,
        "rmse": rmse,
        "mae": rmse / 2,
        "r2": 0.5,
        "loss": loss,
    }


def sources(n: int) -> list[str]:
    return [f"hyperparameter_tuning.train[{i}]" for i in range(n)]


# --- checked_trials -----------------------------------------------------------------------------


def test_valid_results_pass_through_unchanged() -> None:
    results = [trial("a", 0.8, 0.4), trial("b", 0.7, 0.5)]
    checked = checked_trials(results, sources(2))
    assert checked == results
    assert checked[0] is results[0] and checked[1] is results[1]


def test_missing_results_stay_failed_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tabular_pipeline.selection")
    assert checked_trials([None, trial("b", 0.7, 0.5)], sources(2))[0] is None
    assert caplog.records == []


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ({**trial("bad", 0.99, 0.1), "accuracy": "high"}, "result breaks train.v1: accuracy: "),
        (
            {**trial("bad", 0.99, 0.1), "schema_version": 9},
            "result breaks train: schema_version 9 is not one of the published",
        ),
        ({**trial("bad", 0.99, 0.1), "loss": math.nan}, "result holds NaN or infinity"),
        ({"run_id": "bad"}, "result breaks train.v2: (top level): "),
        (["not", "a", "mapping"], "result breaks train.v2: (top level): "),
    ],
    ids=["wrong-type", "wrong-version", "nan", "missing-keys", "not-a-mapping"],
)
def test_invalid_results_count_as_failed_and_are_logged(
    caplog: pytest.LogCaptureFixture, broken: Any, problem: str
) -> None:
    caplog.set_level(logging.WARNING, logger="tabular_pipeline.selection")
    good = trial("ok", 0.7, 0.5)
    checked = checked_trials([good, broken, None], sources(3))
    assert checked == [good, None, None]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("ignoring hyperparameter_tuning.train[1]: ")
    assert f"hyperparameter_tuning.train[1] {problem}" in message


def test_results_and_sources_must_match_in_length() -> None:
    with pytest.raises(ValueError):
        checked_trials([trial("a", 0.8, 0.4)], sources(2))


def test_no_trials() -> None:
    assert checked_trials([], []) == []


# --- select_best --------------------------------------------------------------------------------


def test_picks_the_highest_validation_accuracy() -> None:
    trials = [trial("a", 0.80, 0.4), trial("b", 0.85, 0.5), trial("c", 0.82, 0.3)]
    best = select_best(trials, min_success_fraction=1.0)
    assert best["run_id"] == "b"
    assert best is trials[1]


def test_ties_go_to_lower_loss_then_lower_run_id_whatever_the_order() -> None:
    trials = [trial("z", 0.85, 0.30), trial("y", 0.85, 0.20), trial("x", 0.85, 0.20)]
    assert select_best(trials, 1.0)["run_id"] == "x"
    assert select_best(list(reversed(trials)), 1.0)["run_id"] == "x"
    assert select_best([trials[0], trials[1]], 1.0)["run_id"] == "y"  # lower loss beats run id


def test_accuracy_beats_loss() -> None:
    trials = [trial("a", 0.90, 0.05), trial("b", 0.91, 0.90)]
    assert select_best(trials, 1.0)["run_id"] == "b"


def test_failed_trials_are_ignored() -> None:
    trials = [None, trial("ok", 0.7, 0.5), None, trial("ok2", 0.6, 0.5)]
    assert select_best(trials, min_success_fraction=0.5)["run_id"] == "ok"


def test_a_malformed_trial_never_wins() -> None:
    broken = {**trial("bad", 0.99, 0.1), "accuracy": "high"}
    results = [None, broken, trial("ok", 0.7, 0.5), trial("ok2", 0.6, 0.5)]
    checked = checked_trials(results, sources(4))
    assert select_best(checked, min_success_fraction=0.5)["run_id"] == "ok"
    with pytest.raises(ResultError, match=r"^only 2 of 4 sweep trials succeeded; 3 needed$"):
        select_best(checked, min_success_fraction=0.75)


def test_too_few_successes_is_an_error() -> None:
    with pytest.raises(ResultError, match=r"^only 1 of 4 sweep trials succeeded; 2 needed$"):
        select_best([None, None, None, trial("a", 0.8, 0.3)], min_success_fraction=0.5)


def test_at_least_one_success_is_always_needed() -> None:
    with pytest.raises(ResultError, match=r"^only 0 of 2 sweep trials succeeded; 1 needed$"):
        select_best([None, None], min_success_fraction=0.0)
    with pytest.raises(ResultError, match=r"^only 0 of 0 sweep trials succeeded; 1 needed$"):
        select_best([], min_success_fraction=0.5)
    assert select_best([None, None, trial("a", 0.5, 0.5)], 0.0)["run_id"] == "a"


@pytest.mark.parametrize(
    ("successes", "total", "fraction", "needed"),
    [(2, 3, 0.5, 2), (3, 4, 0.75, 3), (4, 4, 1.0, 4), (1, 10, 0.1, 1), (2, 5, 0.3, 2)],
)
def test_needed_successes_round_up(
    successes: int, total: int, fraction: float, needed: int
) -> None:
    ok = [trial(f"r{i}", 0.5 + i / 100, 0.3) for i in range(successes)]
    trials: list[dict[str, Any] | None] = [*ok, *[None] * (total - successes)]
    assert select_best(trials, fraction)["run_id"] == f"r{successes - 1}"
    if successes > 1:
        # One success fewer is not enough.
        with pytest.raises(ResultError, match=rf"; {needed} needed$"):
            select_best([None, *trials[1:]], fraction)


def test_all_must_succeed_at_fraction_one() -> None:
    trials = [trial("a", 0.9, 0.1), trial("b", 0.8, 0.1), None]
    with pytest.raises(ResultError, match=r"^only 2 of 3 sweep trials succeeded; 3 needed$"):
        select_best(trials, min_success_fraction=1.0)


@pytest.mark.parametrize("fraction", [-0.1, 1.01, 2.0, math.nan, math.inf])
def test_fraction_outside_zero_one_is_a_value_error(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"^min_success_fraction must be within \[0, 1\]; got "):
        select_best([trial("a", 0.9, 0.1)], min_success_fraction=fraction)


def test_fraction_error_is_not_a_result_error() -> None:
    # A bad DAG param is a configuration mistake, not a failed sweep.
    with pytest.raises(ValueError) as info:
        select_best([trial("a", 0.9, 0.1)], min_success_fraction=1.5)
    assert not isinstance(info.value, ResultError)


def test_needed_successes_are_not_inflated_by_float_rounding() -> None:
    trials: list[dict[str, Any] | None] = [
        *[trial(f"r{i:02d}", 0.5, 0.3) for i in range(7)],
        *[None] * 18,
    ]
    # 28% of 25 trials is exactly 7.
    assert select_best(trials, min_success_fraction=0.28)["run_id"] == "r00"


# --- regression ---------------------------------------------------------------------------------


def test_a_regression_sweep_picks_the_lowest_rmse_then_the_lowest_loss() -> None:
    trials = [
        regression_trial("a", 3.0, 0.2),
        regression_trial("b", 2.0, 0.4),
        regression_trial("c", 2.0, 0.3),
    ]
    checked = checked_trials(trials, sources(3))
    assert select_best(checked, 1.0)["run_id"] == "c"


def test_trials_of_different_tasks_are_refused() -> None:
    checked = checked_trials([trial("a", 0.9, 0.3), regression_trial("b", 2.0, 0.4)], sources(2))
    with pytest.raises(ResultError, match=r"different tasks \['classification', 'regression'\]"):
        select_best(checked, 1.0)
