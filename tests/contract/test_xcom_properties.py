"""Properties of the result writer and reader, on generated results and text: a valid result
round-trips exactly or, over the size cap, is refused; NaN or infinity anywhere is refused; any
text or bytes that are not a valid result are refused with a ``ResultError`` (never another
exception); and no refusal leaves a partial, empty or temporary file, or changes the result
already there."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.results import PreprocessResult, StepResult, TrainResult
from contract.xcom import MAX_RESULT_BYTES, ResultError, parse_result, read_result, write_result

from .conftest import TRAIN_FIELDS, example_results

# No example database: a test run leaves nothing in the working tree.
PROPERTIES = settings(max_examples=75, deadline=None, database=None)

NON_FINITE = (math.nan, math.inf, -math.inf)
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)  # any code point but a surrogate
# Text holding a lone surrogate, which no UTF-8 consumer can store.
NOT_UNICODE = st.builds(
    lambda head, surrogate, tail: head + surrogate + tail,
    TEXT,
    st.characters(categories=["Cs"]),
    TEXT,
)
FINITE = st.floats(allow_nan=False, allow_infinity=False)  # huge, tiny, subnormal, -0.0
NON_NEGATIVE = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
UNIT = st.floats(min_value=0, max_value=1)
# Integers beyond 64 bits, which JSON carries exactly.
INTEGERS = st.integers(min_value=-(10**30), max_value=10**30)
SCALARS = st.one_of(TEXT, INTEGERS, FINITE, st.booleans())


def train_fields() -> st.SearchStrategy[dict[str, Any]]:
    """Fields of a valid TrainResult: unicode strings, extreme floats, a nested dict."""
    return st.fixed_dictionaries(
        {
            "accuracy": UNIT,
            "f1_score": UNIT,
            "loss": NON_NEGATIVE,
            "samples_per_sec": NON_NEGATIVE,
            "model_path": TEXT,
            "run_id": TEXT,
            "experiment_name": TEXT,
            "device": TEXT,
            "data_fingerprint": TEXT,
            "epochs": st.integers(min_value=0, max_value=10**12),
            "world_size": st.integers(min_value=1, max_value=4096),
            "resumed": st.booleans(),
            "hyperparameters": st.dictionaries(TEXT, SCALARS, max_size=12),
        }
    )


def preprocess_results() -> st.SearchStrategy[PreprocessResult]:
    """Valid PreprocessResults: a nested model (row counts) and a list of mixed class labels."""
    base = example_results()["preprocess"].model_dump()
    return st.builds(
        lambda uri, classes, counts: PreprocessResult(
            **{**base, "output_uri": uri, "classes": classes, "row_counts": counts}
        ),
        TEXT,
        st.lists(SCALARS, min_size=2, max_size=10),
        st.fixed_dictionaries({k: st.integers(0, 10**15) for k in ("train", "val", "test")}),
    )


@contextmanager
def xcom_folder() -> Iterator[Path]:
    """A fresh folder per generated example (pytest's tmp_path is shared by all of them)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def assert_round_trip_or_refused_as_too_large(result: StepResult, folder: Path) -> None:
    target = folder / "return.json"
    try:
        write_result(result, target)
    except ResultError as exc:
        assert "XCom cap" in str(exc)
        assert listing(folder) == []
        return
    assert listing(folder) == ["return.json"]
    assert 0 < target.stat().st_size <= MAX_RESULT_BYTES
    payload = read_result(result.step, target)
    assert payload == result.model_dump(mode="json")
    assert type(result).model_validate(payload) == result


@PROPERTIES
@given(fields=train_fields())
def test_a_train_result_round_trips_or_is_refused_as_too_large(fields: dict[str, Any]) -> None:
    with xcom_folder() as folder:
        assert_round_trip_or_refused_as_too_large(TrainResult(**fields), folder)


@PROPERTIES
@given(result=preprocess_results())
def test_nested_values_round_trip(result: PreprocessResult) -> None:
    with xcom_folder() as folder:
        assert_round_trip_or_refused_as_too_large(result, folder)


def assert_refused_keeping_the_last_result(result: StepResult, match: str) -> None:
    """Write a valid result, then check that writing ``result`` is refused with ``match``
    and leaves the valid one as it was, alone in its folder."""
    with xcom_folder() as folder:
        target = folder / "return.json"
        write_result(TrainResult(**TRAIN_FIELDS), target)
        before = target.read_bytes()
        with pytest.raises(ResultError, match=match):
            write_result(result, target)
        assert listing(folder) == ["return.json"]
        assert target.read_bytes() == before


@PROPERTIES
@given(
    fields=train_fields(),
    key=st.sampled_from(["accuracy", "f1_score", "loss", "samples_per_sec", "hyperparameters"]),
    bad=st.sampled_from(NON_FINITE),
    name=TEXT,
)
def test_nan_or_infinity_anywhere_is_refused_and_the_last_result_stays(
    fields: dict[str, Any], key: str, bad: float, name: str
) -> None:
    value = {**fields["hyperparameters"], name: bad} if key == "hyperparameters" else bad
    result = TrainResult.model_construct(**{**fields, key: value})  # bypasses the model's checks
    assert_refused_keeping_the_last_result(result, f"NaN or infinity at {key}")


@PROPERTIES
@given(
    fields=train_fields(),
    key=st.sampled_from(["run_id", "model_path", "hyperparameter-key", "hyperparameter-value"]),
    bad=NOT_UNICODE,
)
def test_text_that_is_not_valid_unicode_is_refused_and_the_last_result_stays(
    fields: dict[str, Any], key: str, bad: str
) -> None:
    hyperparameters = fields["hyperparameters"]
    if key == "hyperparameter-key":
        fields = {**fields, "hyperparameters": {**hyperparameters, bad: 1}}
    elif key == "hyperparameter-value":
        fields = {**fields, "hyperparameters": {**hyperparameters, "name": bad}}
    else:
        fields = {**fields, key: bad}
    assert_refused_keeping_the_last_result(TrainResult(**fields), "text that is not valid Unicode")


def json_values() -> st.SearchStrategy[Any]:
    """Arbitrary JSON-like values, NaN and infinity included."""
    return st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | TEXT,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
        max_leaves=30,
    )


def result_like_texts() -> st.SearchStrategy[str]:
    """Text near a real result: a valid train result with one key changed or added, or one
    value's text replaced by a JSON token (NaN, Infinity, a huge number, deep nesting)."""
    valid = example_results()["train"].model_dump(mode="json")
    changed = st.builds(
        lambda k, v: json.dumps({**valid, k: v}),
        st.sampled_from(sorted(valid)) | TEXT,
        json_values(),
    )
    tokens = st.sampled_from(
        ["NaN", "-Infinity", "1e999", "9" * 5000, "[" * 5000, '{"a":' * 5000, "0x10", "'x'"]
    )
    replaced = st.builds(
        lambda k, token: json.dumps({**valid, k: "@@"}).replace('"@@"', token),
        st.sampled_from(sorted(valid)),
        tokens,
    )
    return changed | replaced | st.builds(json.dumps, json_values()) | st.text()


@PROPERTIES
@given(text=result_like_texts())
def test_any_text_is_a_valid_result_or_refused_with_a_result_error(text: str) -> None:
    try:
        payload = parse_result("train", text)
    except ResultError:
        return
    TrainResult.model_validate(payload)


@PROPERTIES
@given(data=st.binary(max_size=64) | result_like_texts().map(str.encode))
def test_any_file_is_a_valid_result_or_refused_with_a_result_error(data: bytes) -> None:
    with xcom_folder() as folder:
        target = folder / "return.json"
        target.write_bytes(data)
        try:
            payload = read_result("train", target)
        except ResultError:
            return
        TrainResult.model_validate(payload)


DEEP = "[" * 900 + "]" * 900  # loads, or not, depending on the stack left


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[" * 5000, "cannot be read as JSON: nested too deeply"),
        ('{"accuracy": ' * 1200, "cannot be read as JSON: nested too deeply"),
        ('{"hyperparameters": {"a": ' + DEEP + "}}", "nested too deeply|does not match"),
        ('{"epochs": ' + "9" * 5000 + "}", "cannot be read as JSON: Exceeds the limit"),
        (json.dumps({"run_id": "x" * MAX_RESULT_BYTES}), "over the 16384-byte XCom cap"),
        ('{"run_id": "\\ud800"}', r"text that is not valid Unicode at run_id"),
    ],
    ids=[
        "deep-list",
        "deep-object",
        "deep-value",
        "5000-digit-integer",
        "over-the-cap",
        "surrogate",
    ],
)
def test_text_json_cannot_hold_as_a_result_is_refused(text: str, match: str) -> None:
    with pytest.raises(ResultError, match=match):
        parse_result("train", text)


def test_a_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "return.json"
    target.write_bytes(b'{"run_id": "\xff\xfe"}')
    with pytest.raises(ResultError, match=f"{target}.*UTF-8"):
        read_result("train", target)


def test_a_folder_in_place_of_the_file_is_refused_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "return.json"
    target.mkdir()
    with pytest.raises(ResultError, match=f"{target}"):
        read_result("train", target)
