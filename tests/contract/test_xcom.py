"""The XCom writer and reader: only valid, finite, small results are ever written, atomically."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

from contract.results import RESULT_MODELS, EvaluateResult, StepResult, TrainResult
from contract.schemas import current_version
from contract.xcom import (
    MAX_RESULT_BYTES,
    ResultError,
    encode_result,
    parse_result,
    read_result,
    validate_payload,
    write_result,
    xcom_path,
)

from .conftest import EVALUATE_FIELDS, TRAIN_FIELDS

STEPS = sorted(RESULT_MODELS)
NAN, INF = float("nan"), float("inf")


def folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- round trip -----------------------------------------------------------------------------


def test_xcom_path_follows_the_environment(xcom_file: Path) -> None:
    assert xcom_path() == xcom_file


@pytest.mark.parametrize("step", STEPS)
def test_valid_result_round_trips(
    step: str, results: dict[str, StepResult], xcom_file: Path
) -> None:
    result = results[step]
    assert result.step == step
    assert write_result(result) == xcom_file
    payload = read_result(step, xcom_file)
    assert payload == result.model_dump(mode="json")
    assert payload["schema_version"] == current_version(step)
    assert type(result).model_validate(payload) == result
    assert folder_listing(xcom_file.parent) == ["return.json"]


def test_written_text_is_compact_sorted_json(
    results: dict[str, StepResult], xcom_file: Path
) -> None:
    write_result(results["train"])
    text = xcom_file.read_text(encoding="utf-8")
    payload = json.loads(text)
    assert text == json.dumps(payload, sort_keys=True, separators=(",", ":"))
    assert text == encode_result(results["train"])


def test_write_result_to_an_explicit_path(results: dict[str, StepResult], tmp_path: Path) -> None:
    target = tmp_path / "nested" / "folder" / "result.json"
    assert write_result(results["deploy"], target) == target
    assert read_result("deploy", target)["version"] == 4


def test_a_result_is_only_valid_for_its_own_step(
    results: dict[str, StepResult], xcom_file: Path
) -> None:
    write_result(results["deploy"])
    with pytest.raises(ResultError, match=r"does not match score\.v1 schema"):
        read_result("score", xcom_file)


def test_read_result_refuses_a_missing_file(xcom_file: Path) -> None:
    with pytest.raises(ResultError, match="does not exist"):
        read_result("train", xcom_file)


# --- NaN / infinity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"accuracy": NAN},
        {"loss": INF},
        {"samples_per_sec": INF},
        {"hyperparameters": {"lr": NAN}},
        {"hyperparameters": {"lr": -INF}},
    ],
    ids=["accuracy-nan", "loss-inf", "samples-inf", "hyperparameter-nan", "hyperparameter-ninf"],
)
def test_model_refuses_nan_and_inf(overrides: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        TrainResult(**{**TRAIN_FIELDS, **overrides})


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_evaluate_model_refuses_non_finite_improvement(value: float) -> None:
    with pytest.raises(pydantic.ValidationError):
        EvaluateResult(**{**EVALUATE_FIELDS, "improvement": value})


@pytest.mark.parametrize(
    ("model", "fields", "overrides"),
    [
        (TrainResult, TRAIN_FIELDS, {"accuracy": NAN}),
        (TrainResult, TRAIN_FIELDS, {"loss": INF}),
        (TrainResult, TRAIN_FIELDS, {"samples_per_sec": INF}),
        (TrainResult, TRAIN_FIELDS, {"hyperparameters": {"lr": NAN}}),
        (EvaluateResult, EVALUATE_FIELDS, {"improvement": -INF}),
        (EvaluateResult, EVALUATE_FIELDS, {"improvement": NAN}),
    ],
    ids=[
        "accuracy-nan",
        "loss-inf",
        "samples-inf",
        "hyperparameter-nan",
        "improvement-ninf",
        "improvement-nan",
    ],
)
def test_writer_refuses_nan_and_inf_that_bypassed_validation(
    model: type[StepResult], fields: dict[str, Any], overrides: dict[str, Any], xcom_file: Path
) -> None:
    result = model.model_construct(**{**fields, **overrides})
    with pytest.raises(ResultError):
        encode_result(result)
    with pytest.raises(ResultError):
        write_result(result)
    assert not xcom_file.exists()
    assert folder_listing(xcom_file.parent) == []


@pytest.mark.parametrize(
    ("step", "key", "token"),
    [
        ("train", "accuracy", "NaN"),
        ("train", "loss", "Infinity"),
        ("train", "samples_per_sec", "Infinity"),
        ("evaluate", "improvement", "-Infinity"),
        ("evaluate", "new_accuracy", "NaN"),
    ],
)
def test_reader_refuses_nan_and_infinity_tokens(
    results: dict[str, StepResult], step: str, key: str, token: str
) -> None:
    payload = results[step].model_dump(mode="json")
    payload[key] = "@@"
    text = json.dumps(payload).replace('"@@"', token)
    assert token in text
    with pytest.raises(ResultError):
        parse_result(step, text)


def test_validate_payload_refuses_a_nan_value(results: dict[str, StepResult]) -> None:
    payload = {**results["train"].model_dump(mode="json"), "accuracy": NAN}
    with pytest.raises(ResultError):
        validate_payload("train", payload)


def test_reader_refuses_infinity_where_the_schema_bounds_it(
    results: dict[str, StepResult],
) -> None:
    payload = results["train"].model_dump(mode="json")
    payload["accuracy"] = "@@"
    with pytest.raises(ResultError, match="accuracy"):
        parse_result("train", json.dumps(payload).replace('"@@"', "Infinity"))


# --- size cap ---------------------------------------------------------------------------------


def test_result_over_the_size_cap_is_refused(
    train_result: Callable[..., TrainResult], xcom_file: Path
) -> None:
    huge = train_result(hyperparameters={f"param_{i:05d}": "x" * 40 for i in range(1000)})
    with pytest.raises(ResultError, match="over the 16384-byte XCom cap"):
        encode_result(huge)
    with pytest.raises(ResultError, match="XCom cap"):
        write_result(huge)
    assert not xcom_file.exists()
    assert folder_listing(xcom_file.parent) == []


def test_size_cap_is_inclusive(train_result: Callable[..., TrainResult]) -> None:
    base = len(encode_result(train_result(run_id="")).encode())
    at_cap = train_result(run_id="r" * (MAX_RESULT_BYTES - base))
    assert len(encode_result(at_cap).encode()) == MAX_RESULT_BYTES
    over = train_result(run_id="r" * (MAX_RESULT_BYTES - base + 1))
    with pytest.raises(ResultError, match="16385 bytes"):
        encode_result(over)


def test_size_cap_counts_bytes_not_characters(train_result: Callable[..., TrainResult]) -> None:
    base = len(encode_result(train_result(run_id="")).encode())
    # json.dumps escapes non-ASCII, so each "é" is six bytes ("\u00e9") in the file.
    chars = (MAX_RESULT_BYTES - base) // 6 + 1
    with pytest.raises(ResultError, match="XCom cap"):
        encode_result(train_result(run_id="é" * chars))


# --- missing / unknown keys, bad types -------------------------------------------------------


@pytest.mark.parametrize("missing", ["experiment_name", "run_id", "model_path", "samples_per_sec"])
def test_missing_required_key_is_refused(missing: str, xcom_file: Path) -> None:
    fields = {k: v for k, v in TRAIN_FIELDS.items() if k != missing}
    result = TrainResult.model_construct(**fields)
    with pytest.raises(ResultError, match=f"'{missing}' is a required property"):
        write_result(result)
    assert not xcom_file.exists()


def test_model_requires_its_fields() -> None:
    fields = {k: v for k, v in TRAIN_FIELDS.items() if k != "accuracy"}
    with pytest.raises(pydantic.ValidationError, match="accuracy"):
        TrainResult(**fields)


def test_unknown_key_is_refused(results: dict[str, StepResult]) -> None:
    payload = {**results["train"].model_dump(mode="json"), "surprise": 1}
    with pytest.raises(ResultError, match="surprise"):
        validate_payload("train", payload)
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        TrainResult(**{**TRAIN_FIELDS, "surprise": 1})


def test_unknown_nested_key_is_refused(results: dict[str, StepResult]) -> None:
    payload = results["preprocess"].model_dump(mode="json")
    payload["row_counts"]["holdout"] = 5
    with pytest.raises(ResultError, match="row_counts"):
        validate_payload("preprocess", payload)


@pytest.mark.parametrize(
    ("step", "key", "value"),
    [
        ("train", "accuracy", 1.5),
        ("train", "loss", -0.1),
        ("train", "schema_version", 3),
        ("evaluate", "reason", "because"),
        ("evaluate", "should_deploy", "yes"),
        ("deploy", "version", 0),
        ("preprocess", "classes", ["only"]),
        ("validate", "row_count", -1),
    ],
)
def test_out_of_contract_values_are_refused(
    results: dict[str, StepResult], step: str, key: str, value: Any
) -> None:
    payload = {**results[step].model_dump(mode="json"), key: value}
    with pytest.raises(ResultError, match=key):
        validate_payload(step, payload)


def test_valid_payload_is_returned_unchanged(results: dict[str, StepResult]) -> None:
    payload = results["evaluate"].model_dump(mode="json")
    assert validate_payload("evaluate", payload) is payload


def test_null_baseline_is_allowed_for_a_first_model(results: dict[str, StepResult]) -> None:
    first = results["evaluate"].model_copy(
        update={"baseline_accuracy": None, "improvement": None, "champion_version": None}
    )
    payload = json.loads(encode_result(first))
    assert payload["baseline_accuracy"] is None
    assert math.isclose(payload["new_accuracy"], 0.91)


# --- parse_result ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, "empty"),
        ("", "empty"),
        ("  \n\t ", "empty"),
        ("{not json", "not valid JSON"),
        ('{"accuracy": 0.9', "not valid JSON"),
        ("null", "missing"),
        ("[1, 2]", "must be a JSON object"),
        ('"train"', "must be a JSON object"),
        ("{}", "required property"),
    ],
    ids=[
        "none",
        "empty",
        "whitespace",
        "garbage",
        "truncated",
        "null",
        "list",
        "string",
        "empty-obj",
    ],
)
def test_parse_result_refuses_bad_text(text: str | None, match: str) -> None:
    with pytest.raises(ResultError, match=match):
        parse_result("train", text)


def test_validate_payload_refuses_none() -> None:
    with pytest.raises(ResultError, match="missing"):
        validate_payload("train", None)


def test_result_error_is_a_value_error() -> None:
    assert issubclass(ResultError, ValueError)


# --- atomicity -------------------------------------------------------------------------------


def test_successful_write_leaves_no_temp_files(
    results: dict[str, StepResult], xcom_file: Path
) -> None:
    for step in STEPS:
        write_result(results[step])
        assert folder_listing(xcom_file.parent) == ["return.json"]
        assert read_result(step, xcom_file) == results[step].model_dump(mode="json")


def test_the_result_file_is_readable_by_other_users(
    results: dict[str, StepResult], xcom_file: Path
) -> None:
    # 0644 whatever the umask: the XCom sidecar and a person on the host may be other users.
    private = os.umask(0o077)
    try:
        write_result(results["train"])
    finally:
        os.umask(private)
    assert stat.S_IMODE(xcom_file.stat().st_mode) == 0o644


def test_failed_write_leaves_the_previous_result_untouched(
    results: dict[str, StepResult], xcom_file: Path
) -> None:
    write_result(results["train"])
    good = xcom_file.read_bytes()
    bad = TrainResult.model_construct(**{**TRAIN_FIELDS, "accuracy": NAN})
    with pytest.raises(ResultError):
        write_result(bad)
    huge = TrainResult(**{**TRAIN_FIELDS, "hyperparameters": {"k": "v" * MAX_RESULT_BYTES}})
    with pytest.raises(ResultError):
        write_result(huge)
    assert xcom_file.read_bytes() == good
    assert folder_listing(xcom_file.parent) == ["return.json"]


def test_write_that_fails_at_rename_removes_its_temp_file(
    results: dict[str, StepResult], tmp_path: Path
) -> None:
    target = tmp_path / "out" / "return.json"
    (target / "occupied").mkdir(parents=True)  # a non-empty folder where the file should go
    with pytest.raises(OSError):
        write_result(results["train"], target)
    assert folder_listing(target.parent) == ["return.json"]
    assert target.is_dir()
    assert folder_listing(target) == ["occupied"]


# --- the task: version 2 of preprocess and train ----------------------------------------------

REGRESSION_TRAIN = {
    **TRAIN_FIELDS,
    "task": "regression",
    "accuracy": None,
    "f1_score": None,
    "rmse": 3.5,
    "mae": 2.25,
    "r2": -0.5,
}


def test_a_regression_result_round_trips(xcom_file: Path) -> None:
    result = TrainResult(**REGRESSION_TRAIN)
    write_result(result)
    payload = read_result("train", xcom_file)
    assert (payload["task"], payload["rmse"], payload["accuracy"]) == ("regression", 3.5, None)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"accuracy": 0.5}, r"must leave \['accuracy'\] null"),
        ({"rmse": None}, r"needs \['rmse'\]"),
        ({"task": "classification"}, r"needs \['accuracy', 'f1_score'\]"),
    ],
)
def test_a_result_carries_its_own_tasks_metrics_and_no_other(
    changes: dict[str, Any], problem: str, xcom_file: Path
) -> None:
    fields = {**REGRESSION_TRAIN, **changes}
    with pytest.raises(pydantic.ValidationError, match=problem):
        TrainResult(**fields)
    # The published schema says the same to a reader that does not run this code.
    with pytest.raises(ResultError, match=r"does not match train\.v2 schema"):
        validate_payload("train", {**fields, "schema_version": 2})
    assert not xcom_file.exists()


def test_a_version_1_result_is_still_read_against_version_1() -> None:
    v1 = {k: v for k, v in TRAIN_FIELDS.items() if k not in ("task", "rmse", "mae", "r2")}
    assert validate_payload("train", {**v1, "schema_version": 1})["accuracy"] == v1["accuracy"]
    with pytest.raises(ResultError, match=r"does not match train\.v1 schema"):
        validate_payload("train", {**v1, "task": "classification", "schema_version": 1})
