"""Sweep winner selection: validation accuracy, deterministic tie-break, failed trials ignored."""

from __future__ import annotations

from typing import Any

import pytest

from contract.selection import select_best
from contract.xcom import ResultError

from .conftest import TRAIN_FIELDS


def trial(run_id: str, accuracy: float, loss: float) -> dict[str, Any]:
    return {
        **TRAIN_FIELDS,
        "schema_version": 1,
        "run_id": run_id,
        "accuracy": accuracy,
        "loss": loss,
    }


def test_picks_the_highest_validation_accuracy() -> None:
    trials = [trial("a", 0.80, 0.4), trial("b", 0.85, 0.5), trial("c", 0.82, 0.3)]
    assert select_best(trials)["run_id"] == "b"


def test_ties_go_to_lower_loss_then_lower_run_id_whatever_the_order() -> None:
    trials = [trial("z", 0.85, 0.30), trial("y", 0.85, 0.20), trial("x", 0.85, 0.20)]
    assert select_best(trials)["run_id"] == "x"
    assert select_best(list(reversed(trials)))["run_id"] == "x"


def test_failed_and_malformed_trials_are_ignored() -> None:
    broken = {**trial("bad", 0.99, 0.1), "accuracy": "high"}
    trials = [None, broken, trial("ok", 0.7, 0.5), trial("ok2", 0.6, 0.5)]
    assert select_best(trials)["run_id"] == "ok"


def test_too_few_successes_is_an_error() -> None:
    with pytest.raises(ResultError, match="only 1 of 4 sweep trials succeeded; 2 needed"):
        select_best([None, None, None, trial("a", 0.8, 0.3)], min_success_fraction=0.5)
    with pytest.raises(ResultError, match="only 0 of 2"):
        select_best([None, None], min_success_fraction=0.0)
