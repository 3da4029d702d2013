"""Version 2 of the evaluate result: the task, with the classification keys of version 1 or the
regression keys (RMSE, its reduction, per-slice RMSE), each refused for the other task by the
model and by the published schema alike; version 1 results still read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from contract.results import EvaluateResult, RegressionEvaluationMetrics, SliceError
from contract.schemas import load_schema
from contract.xcom import ResultError, read_result, validate_payload, write_result

from .conftest import EVALUATE_FIELDS

REGRESSION_METRICS = {"rmse": 4.5, "mae": 3.25, "r2": 0.81}
REGRESSION_EVALUATE: dict[str, Any] = {
    **EVALUATE_FIELDS,
    "task": "regression",
    "new_accuracy": None,
    "new_f1_score": None,
    "new_rmse": 4.5,
    "baseline_accuracy": None,
    "baseline_rmse": 5.0,
    "improvement": 0.5,
    "improvement_low": 0.1,
    "improvement_high": 0.9,
    "metrics": REGRESSION_METRICS,
    "baseline_metrics": {"rmse": 5.0, "mae": 3.5, "r2": 0.77},
    "worst_slice": {"column": "city", "value": "north", "rows": 60, "rmse": 6.5},
    "baseline_worst_slice": {"column": "city", "value": "north", "rows": 60, "rmse": 7.0},
}


def test_a_regression_result_round_trips(xcom_file: Path) -> None:
    result = EvaluateResult(**REGRESSION_EVALUATE)
    assert isinstance(result.metrics, RegressionEvaluationMetrics)
    assert isinstance(result.worst_slice, SliceError)
    write_result(result)
    payload = read_result("evaluate", xcom_file)
    assert payload["schema_version"] == 2
    assert (payload["task"], payload["new_rmse"], payload["new_accuracy"]) == (
        "regression",
        4.5,
        None,
    )
    assert payload["metrics"] == REGRESSION_METRICS
    assert EvaluateResult.model_validate(payload) == result


def test_a_classification_result_keeps_the_keys_of_version_1_and_nulls_the_new(
    xcom_file: Path,
) -> None:
    write_result(EvaluateResult(**EVALUATE_FIELDS))
    payload = read_result("evaluate", xcom_file)
    assert (payload["schema_version"], payload["task"]) == (2, "classification")
    assert (payload["new_rmse"], payload["baseline_rmse"]) == (None, None)
    assert {k: payload[k] for k in EVALUATE_FIELDS} == EVALUATE_FIELDS


CLASSIFICATION_METRICS = EVALUATE_FIELDS["metrics"]
ACCURACY_SLICE = EVALUATE_FIELDS["worst_slice"]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"new_accuracy": 0.5}, r"must leave \['new_accuracy'\] null"),
        ({"new_rmse": None}, r"needs \['new_rmse'\]"),
        ({"baseline_accuracy": 0.9}, r"must leave \['baseline_accuracy'\] null"),
        ({"metrics": CLASSIFICATION_METRICS}, "metrics must be RegressionEvaluationMetrics"),
        ({"baseline_metrics": CLASSIFICATION_METRICS}, "baseline_metrics must be Regression"),
        ({"worst_slice": ACCURACY_SLICE}, "worst_slice must be SliceError"),
        ({"reason": "calibration_regression"}, "calibration_regression is not a reason"),
        ({"task": "classification"}, r"needs \['new_accuracy', 'new_f1_score'\]"),
        ({"new_rmse": -1.0}, "greater than or equal to 0"),
        ({"worst_slice": {**ACCURACY_SLICE, "rmse": 1.0}}, "worst_slice"),
    ],
)
def test_a_regression_result_carries_its_own_keys_and_no_other(
    changes: dict[str, Any], problem: str, xcom_file: Path
) -> None:
    fields = {**REGRESSION_EVALUATE, **changes}
    with pytest.raises(pydantic.ValidationError, match=problem):
        EvaluateResult(**fields)
    # The published schema says the same to a reader that does not run this code.
    with pytest.raises(ResultError, match=r"does not match evaluate\.v2 schema"):
        validate_payload("evaluate", {**fields, "schema_version": 2})
    assert not xcom_file.exists()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"new_rmse": 3.0}, r"must leave \['new_rmse'\] null"),
        ({"baseline_rmse": 3.0}, r"must leave \['baseline_rmse'\] null"),
        ({"metrics": REGRESSION_METRICS}, "metrics must be EvaluationMetrics"),
        ({"baseline_worst_slice": REGRESSION_EVALUATE["worst_slice"]}, "must be SliceAccuracy"),
        ({"new_f1_score": None}, r"needs \['new_f1_score'\]"),
    ],
)
def test_a_classification_result_carries_its_own_keys_and_no_other(
    changes: dict[str, Any], problem: str
) -> None:
    fields = {**EVALUATE_FIELDS, **changes}
    with pytest.raises(pydantic.ValidationError, match=problem):
        EvaluateResult(**fields)
    with pytest.raises(ResultError, match=r"does not match evaluate\.v2 schema"):
        validate_payload("evaluate", {**fields, "task": "classification", "schema_version": 2})


def test_the_schema_requires_every_key_of_version_2() -> None:
    schema = load_schema("evaluate")
    assert {"task", "new_rmse", "baseline_rmse", "champion_problem"} <= set(schema["required"])
    assert set(schema["required"]) == set(schema["properties"])
    payload = EvaluateResult(**REGRESSION_EVALUATE).model_dump(mode="json")
    del payload["baseline_rmse"]
    with pytest.raises(ResultError, match="'baseline_rmse' is a required property"):
        validate_payload("evaluate", payload)


def version_1_payload() -> dict[str, Any]:
    return {**EVALUATE_FIELDS, "schema_version": 1}


def test_version_1_is_published_unchanged_and_still_checks_what_it_did() -> None:
    v1 = load_schema("evaluate", 1)
    assert v1["properties"]["schema_version"]["const"] == 1 and "task" not in v1["properties"]
    assert validate_payload("evaluate", version_1_payload())["new_accuracy"] == 0.91
    with pytest.raises(ResultError, match=r"does not match evaluate\.v1 schema"):
        validate_payload("evaluate", {**version_1_payload(), "task": "classification"})


def test_an_evaluation_recorded_in_version_1_reads_as_version_2() -> None:
    """The deployer reads the evaluation an earlier image recorded on a run."""
    result = EvaluateResult.model_validate(version_1_payload())
    assert (result.schema_version, result.task) == (2, "classification")
    assert result == EvaluateResult(**EVALUATE_FIELDS)
    with pytest.raises(pydantic.ValidationError):  # version 1 knew no regression
        EvaluateResult.model_validate({**REGRESSION_EVALUATE, "schema_version": 1})
