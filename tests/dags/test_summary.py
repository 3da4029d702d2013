"""The summary's evaluation line names the task's score: accuracy, or RMSE and its reduction."""

from __future__ import annotations

from typing import Any

from tabular_pipeline.summary import evaluation_line


def decision(**fields: Any) -> dict[str, Any]:
    return {
        "should_deploy": True,
        "reason": "promoted",
        "confidence": 0.95,
        "improvement": None,
        "improvement_low": None,
        "improvement_high": None,
        **fields,
    }


def test_a_classification_decision_shows_accuracy_and_its_gain() -> None:
    line = evaluation_line(
        decision(
            new_accuracy=0.9,
            baseline_accuracy=0.88,
            improvement=0.02,
            improvement_low=0.01,
            improvement_high=0.03,
        )
    )
    assert line == (
        "Evaluation on the test split: candidate 0.9000, champion 0.8800, gain +0.0200 (95% "
        "interval +0.0100 to +0.0300) -> deploy (promoted)"
    )


def test_a_regression_decision_shows_rmse_and_its_reduction() -> None:
    line = evaluation_line(
        decision(
            task="regression",
            new_accuracy=None,
            baseline_accuracy=None,
            new_rmse=1250.5,
            baseline_rmse=1300.0,
            improvement=49.5,
            improvement_low=12.25,
            improvement_high=80.0,
        )
    )
    assert line == (
        "Evaluation on the test split: candidate RMSE 1250, champion 1300, RMSE reduction +49.5 "
        "(95% interval +12.25 to +80) -> deploy (promoted)"
    )


def test_a_first_regression_model_has_no_champion_and_no_interval() -> None:
    line = evaluation_line(
        decision(task="regression", new_rmse=3.5, baseline_rmse=None, reason="first_model")
    )
    assert line == (
        "Evaluation on the test split: candidate RMSE 3.5, champion none -> deploy (first_model)"
    )
