"""The DAG's check of what a step pushed: the bundled JSON Schemas accept the contract's valid
example results and refuse anything else with a message naming the task, the schema and where."""

from __future__ import annotations

import math
from typing import Any

import pytest
from tabular_pipeline.results import SCHEMA_DIR, ResultError, load_schema, require_result, task_of

from tests.contract.conftest import EVALUATE_FIELDS, TRAIN_FIELDS, example_results

STEPS = ("validate", "preprocess", "train", "evaluate", "deploy", "score")
SOURCE = "hyperparameter_tuning.train[2]"


def example(step: str) -> dict[str, Any]:
    """A valid result of ``step`` as the step writes it (JSON types, schema_version included)."""
    return example_results()[step].model_dump(mode="json")


def version(step: str) -> int:
    """The schema version the step writes now."""
    return int(example(step)["schema_version"])


def error_of(step: str, value: Any, source: str = SOURCE) -> str:
    with pytest.raises(ResultError) as info:
        require_result(step, value, source)
    return str(info.value)


# --- valid results ------------------------------------------------------------------------------


def test_examples_cover_every_bundled_schema() -> None:
    assert sorted(example_results()) == sorted(STEPS)
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(
        f"{step}.v{v}.json" for step in STEPS for v in range(1, version(step) + 1)
    )


@pytest.mark.parametrize("step", STEPS)
def test_valid_example_result_passes(step: str) -> None:
    value = example(step)
    assert require_result(step, value, SOURCE) is value


@pytest.mark.parametrize(
    ("step", "fields"), [("train", TRAIN_FIELDS), ("evaluate", EVALUATE_FIELDS)]
)
def test_plain_field_dicts_of_version_1_still_pass(step: str, fields: dict[str, Any]) -> None:
    """What an earlier image wrote (no task) is read against the schema of its version."""
    value = {**fields, "schema_version": 1}
    assert require_result(step, value, SOURCE) == value
    assert task_of(value) == "classification"


def test_a_regression_train_result_passes_and_says_its_task() -> None:
    value = {
        **example("train"),
        "task": "regression",
        "accuracy": None,
        "f1_score": None,
        "rmse": 2.5,
        "mae": 1.5,
        "r2": 0.75,
    }
    assert require_result("train", value, SOURCE) is value
    assert task_of(value) == "regression"
    value["accuracy"] = 0.5  # a regression result carries no accuracy
    assert error_of("train", value).startswith(f"{SOURCE} result breaks train.v2: accuracy: ")


def test_an_unpublished_version_is_named() -> None:
    value = {**example("train"), "schema_version": 9}
    assert error_of("train", value) == (
        f"{SOURCE} result breaks train: schema_version 9 is not one of the published [1, 2]"
    )


def test_optional_nulls_of_a_first_model_pass() -> None:
    first_model = {
        **example("evaluate"),
        "reason": "first_model",
        "baseline_accuracy": None,
        "improvement": None,
        "champion_version": None,
    }
    assert require_result("evaluate", first_model, "evaluate") is first_model


@pytest.mark.parametrize("step", STEPS)
def test_bundled_schema_is_the_latest_schema_of_the_step(step: str) -> None:
    schema = load_schema(step)
    assert schema is not None
    assert schema["title"] == f"{step} result v{version(step)}"
    assert schema["properties"]["schema_version"]["const"] == version(step)
    assert "schema_version" in schema["required"]
    assert schema["additionalProperties"] is False


# --- missing and malformed results --------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_none_is_no_result(step: str) -> None:
    assert error_of(step, None, "data_preparation.preprocess") == (
        "data_preparation.preprocess pushed no result (return.json missing or empty)"
    )


@pytest.mark.parametrize("value", [[], "ok", 0.9, 1, True, {}], ids=repr)
def test_wrong_type_breaks_the_schema_at_top_level(value: Any) -> None:
    message = error_of("train", value)
    assert message.startswith(f"{SOURCE} result breaks train.v2: (top level): "), message


@pytest.mark.parametrize("key", ["accuracy", "run_id", "model_path", "schema_version"])
def test_missing_required_key(key: str) -> None:
    value = example("train")
    del value[key]
    assert error_of("train", value) == (
        f"{SOURCE} result breaks train.v2: (top level): '{key}' is a required property"
    )


BAD_FIELDS: list[tuple[str, str, Any, str]] = [
    # (step, dotted key, bad value, JSON path in the message)
    ("train", "accuracy", "high", "accuracy"),
    ("train", "accuracy", 1.5, "accuracy"),
    ("train", "loss", -0.1, "loss"),
    ("train", "epochs", 2.5, "epochs"),
    ("train", "hyperparameters.lr", [0.001], "hyperparameters/lr"),
    ("train", "hyperparameters.optimizer", None, "hyperparameters/optimizer"),
    ("validate", "anomaly_counts.error", "none", "anomaly_counts/error"),
    ("preprocess", "row_counts.train", "2100", "row_counts/train"),
    ("preprocess", "classes", "no,yes", "classes"),
    ("evaluate", "should_deploy", "yes", "should_deploy"),
    ("evaluate", "reason", "because", "reason"),
    ("deploy", "version", "4", "version"),
]


@pytest.mark.parametrize(("step", "key", "bad", "where"), BAD_FIELDS)
def test_bad_field_names_source_schema_and_path(step: str, key: str, bad: Any, where: str) -> None:
    value = example(step)
    *parents, last = key.split(".")
    node = value
    for part in parents:
        node = node[part]
    node[last] = bad
    message = error_of(step, value)
    assert message.startswith(f"{SOURCE} result breaks {step}.v{version(step)}: {where}: "), message


@pytest.mark.parametrize("step", STEPS)
def test_unknown_key_is_refused(step: str) -> None:
    value = {**example(step), "surprise": 1}
    message = error_of(step, value)
    assert message.startswith(f"{SOURCE} result breaks {step}.v{version(step)}: (top level): ")
    assert "surprise" in message


def test_a_result_of_another_step_is_refused() -> None:
    message = error_of("train", example("evaluate"), "evaluate")
    assert message.startswith("evaluate result breaks train.v2: (top level): "), message


# --- non-finite numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("accuracy", math.nan),
        ("f1_score", math.nan),
        ("loss", math.nan),
        ("loss", math.inf),
        ("samples_per_sec", math.inf),
        ("hyperparameters.lr", math.nan),
        ("hyperparameters.weight_decay", -math.inf),
    ],
)
def test_nan_and_infinity_are_refused(key: str, bad: float) -> None:
    value = example("train")
    *parents, last = key.split(".")
    node = value
    for part in parents:
        node = node[part]
    node[last] = bad
    assert error_of("train", value) == f"{SOURCE} result holds NaN or infinity"


def test_nan_in_a_list_is_refused() -> None:
    value = example("preprocess")
    value["classes"] = [0.0, 1.5]  # numeric class labels are allowed...
    assert require_result("preprocess", value, "preprocess") is value
    value["classes"] = [0.0, math.nan]  # ...but not a NaN one
    assert error_of("preprocess", value, "preprocess") == (
        "preprocess result holds NaN or infinity"
    )


def test_nan_where_an_integer_is_expected_breaks_the_schema_first() -> None:
    value = example("validate")
    value["anomaly_counts"]["warning"] = math.nan
    message = error_of("validate", value)
    assert message.startswith(f"{SOURCE} result breaks validate.v1: anomaly_counts/warning: ")


def test_result_error_is_a_value_error() -> None:
    assert issubclass(ResultError, ValueError)
