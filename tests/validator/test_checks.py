"""Each data check of ``validator.checks`` on its own: what it finds, its severity, and
what it leaves alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.validator.frames import profile_frame
from validator.checks import (
    Anomaly,
    Thresholds,
    check_against_schema,
    check_data,
    check_keys,
)
from validator.schema import DataSchema, infer_schema

LIMITS = Thresholds(min_rows=1)


@pytest.fixture
def base() -> pd.DataFrame:
    """100 rows: a numeric, a categorical and a balanced label column."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "amount": rng.uniform(0, 100, 100),
        "colour": np.tile(["red", "green", "blue", "black"], 25),
        "label": np.tile(["no", "yes"], 50),
    })  # fmt: skip


def schema_of(frame: pd.DataFrame) -> DataSchema:
    return infer_schema(profile_frame(frame, "label"), "label")


def against(frame: pd.DataFrame, schema: DataSchema, limits: Thresholds = LIMITS) -> list[Anomaly]:
    return check_against_schema(profile_frame(frame, "label"), schema, limits)


def data_checks(frame: pd.DataFrame, *keys: str) -> list[Anomaly]:
    return check_data(profile_frame(frame, "label", keys), "label", LIMITS)


def keys_of(frame: pd.DataFrame, *keys: str) -> list[Anomaly]:
    key = profile_frame(frame, "label", keys).keys
    assert key is not None
    return check_keys(key)


def found(anomalies: list[Anomaly]) -> set[tuple[str, str | None, str]]:
    return {(a.check, a.column, a.severity) for a in anomalies}


def only(anomalies: list[Anomaly], check: str) -> Anomaly:
    (anomaly,) = [a for a in anomalies if a.check == check]
    return anomaly


# --- without a schema --------------------------------------------------------------------------


def test_clean_data_has_no_anomalies(base: pd.DataFrame) -> None:
    assert data_checks(base) == []
    assert against(base, schema_of(base)) == []


def test_too_few_rows_names_the_flag(base: pd.DataFrame) -> None:
    anomalies = check_data(profile_frame(base, "label"), "label", Thresholds(min_rows=101))
    anomaly = only(anomalies, "too_few_rows")
    assert (anomaly.severity, anomaly.observed) == ("error", 100)
    assert "--min-rows" in anomaly.description


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_of_either_sign_are_errors(base: pd.DataFrame, value: float) -> None:
    base.loc[3, "amount"] = value
    anomaly = only(data_checks(base), "infinite_values")
    assert (anomaly.column, anomaly.severity, anomaly.observed) == ("amount", "error", 1)
    assert "1 infinite value " in anomaly.description


def test_nan_is_missing_not_infinite(base: pd.DataFrame) -> None:
    base.loc[:4, "amount"] = np.nan
    assert data_checks(base) == []
    assert profile_frame(base).columns["amount"].null_count == 5


def test_all_null_column_is_an_error(base: pd.DataFrame) -> None:
    anomaly = only(data_checks(base.assign(empty=np.nan)), "all_null")
    assert (anomaly.column, anomaly.severity) == ("empty", "error")


def test_numbers_mixed_with_text_are_an_error(base: pd.DataFrame) -> None:
    mixed = base.assign(age=[str(i) for i in range(97)] + ["?", "n/a", "?"])
    anomaly = only(data_checks(mixed), "mixed_types")
    assert (anomaly.column, anomaly.severity) == ("age", "error")
    assert anomaly.observed == {"numeric_share": 0.97, "text_values": ["?", "n/a"]}
    assert "97.0% of its values" in anomaly.description


def test_text_with_a_few_numeric_codes_is_categorical(base: pd.DataFrame) -> None:
    codes = base.assign(grade=["A", "B", "C", "7"] * 25)  # mostly text: a category, not a number
    assert data_checks(codes) == []


def test_all_numeric_strings_are_not_mixed(base: pd.DataFrame) -> None:
    assert data_checks(base.assign(zip_code=[f"{i:05d}" for i in range(100)])) == []


def test_single_class_and_null_labels(base: pd.DataFrame) -> None:
    anomalies = data_checks(base.assign(label=["yes"] * 99 + [None]))
    assert found(anomalies) == {
        ("single_class", "label", "error"),
        ("null_target", "label", "error"),
    }


# --- declared keys -----------------------------------------------------------------------------


def test_duplicate_keys_are_an_error_with_examples(base: pd.DataFrame) -> None:
    keyed = base.assign(id=[*range(98), 5, 7])
    anomaly = only(data_checks(keyed, "id"), "duplicate_keys")
    assert (anomaly.column, anomaly.severity, anomaly.observed) == ("id", "error", 2)
    assert "['5', '7']" in anomaly.description


def test_composite_key_is_unique_as_a_whole(base: pd.DataFrame) -> None:
    keyed = base.assign(day=np.repeat([1, 2], 50), shop=np.tile(range(50), 2))
    assert keys_of(keyed, "day", "shop") == []
    assert keys_of(keyed, "shop")[0].observed == 50
    keyed.loc[99, "shop"] = 0
    anomaly = only(keys_of(keyed, "day", "shop"), "duplicate_keys")
    assert anomaly.column == "day, shop"
    assert "(2, 0)" in anomaly.description


def test_null_and_missing_keys(base: pd.DataFrame) -> None:
    keyed = base.assign(id=[None, *range(99)])
    assert found(keys_of(keyed, "id")) == {("null_keys", "id", "error")}
    anomaly = only(keys_of(base, "id"), "missing_key")
    assert "--key" in anomaly.description


# --- against a schema --------------------------------------------------------------------------


def test_type_change_is_an_error_and_hides_other_column_checks(base: pd.DataFrame) -> None:
    schema = schema_of(base)
    changed = base.assign(amount=["x"] * 100)
    assert found(against(changed, schema)) == {("type_changed", "amount", "error")}


def test_storage_type_change_is_a_warning_but_ints_to_floats_are_not(base: pd.DataFrame) -> None:
    schema = schema_of(base.assign(flag=[True, False] * 50, count=range(100)))
    changed = base.assign(flag=["True", "False"] * 50, count=np.arange(100, dtype="float64"))
    anomaly = only(against(changed, schema), "dtype_changed")
    assert (anomaly.column, anomaly.expected, anomaly.observed) == ("flag", "boolean", "string")


@pytest.mark.parametrize(
    ("missing", "severity"), [(5, None), (15, "warning"), (60, "error")], ids=["ok", "warn", "err"]
)
def test_null_rate_rise(base: pd.DataFrame, missing: int, severity: str | None) -> None:
    schema = schema_of(base.assign(amount=[np.nan] * 2 + list(base.amount[2:])))
    changed = base.copy()
    changed.loc[: missing - 1, "amount"] = np.nan
    anomalies = [a for a in against(changed, schema) if a.check == "null_rate"]
    assert [a.severity for a in anomalies] == ([severity] if severity else [])


def test_nulls_where_the_schema_had_none_are_a_warning(base: pd.DataFrame) -> None:
    schema = schema_of(base)
    changed = base.copy()
    changed.loc[0, "colour"] = None
    anomaly = only(against(changed, schema), "new_nulls")
    assert (anomaly.column, anomaly.severity, anomaly.observed) == ("colour", "warning", 1)


@pytest.mark.parametrize(("rows", "severity"), [(1, "warning"), (20, "error")])
def test_out_of_range_share_sets_the_severity(base: pd.DataFrame, rows: int, severity: str) -> None:
    schema = schema_of(base)
    changed = base.copy()
    changed.loc[: rows - 1, "amount"] = 1000.0
    anomaly = only(against(changed, schema), "out_of_range")
    assert anomaly.severity == severity
    assert anomaly.observed[1] == 1000.0


def test_range_margin_lets_new_extremes_near_the_range_pass(base: pd.DataFrame) -> None:
    schema = schema_of(base.assign(amount=np.linspace(0, 100, 100)))
    changed = base.copy()
    changed.loc[0, "amount"], changed.loc[1, "amount"] = 109.0, -9.0  # inside 10 % of the width
    assert not [a for a in against(changed, schema) if a.check == "out_of_range"]
    exact = only(against(changed, schema, replace(LIMITS, range_margin=0.0)), "out_of_range")
    assert "has 2 values (2.00%) outside the schema range [0, 100];" in exact.description
    changed.loc[2, "amount"] = 111.0
    anomaly = only(against(changed, schema), "out_of_range")
    assert "has 1 value (1.00%) outside the schema range [0, 100] ± 10;" in anomaly.description
    assert (anomaly.expected, anomaly.observed) == ([0.0, 100.0], [-9.0, 111.0])


@pytest.mark.parametrize(("rows", "severity"), [(2, "warning"), (30, "error")])
def test_unseen_categories_share_sets_the_severity(
    base: pd.DataFrame, rows: int, severity: str
) -> None:
    schema = schema_of(base)
    changed = base.copy()
    changed.loc[: rows - 1, "colour"] = "purple"
    anomaly = only(against(changed, schema), "unseen_categories")
    assert (anomaly.severity, anomaly.observed) == (severity, ["purple"])


def test_unseen_labels_are_an_error(base: pd.DataFrame) -> None:
    schema = schema_of(base)
    changed = base.copy()
    changed.loc[0, "label"] = "maybe"
    anomaly = only(against(changed, schema), "unseen_labels")
    assert (anomaly.severity, anomaly.expected, anomaly.observed) == (
        "error",
        ["no", "yes"],
        ["maybe"],
    )


@pytest.mark.parametrize(("yes", "severity"), [(55, None), (65, "warning"), (85, "error")])
def test_label_shift(base: pd.DataFrame, yes: int, severity: str | None) -> None:
    schema = schema_of(base)  # 50% yes
    shifted = base.assign(label=["yes"] * yes + ["no"] * (100 - yes))
    anomalies = [a for a in against(shifted, schema) if a.check == "label_shift"]
    assert [a.severity for a in anomalies] == ([severity] if severity else [])
    if severity:
        assert f"is now {100 - yes}.0%" in anomalies[0].description  # the first of a tie: no


def test_anomalies_are_json_safe(base: pd.DataFrame) -> None:
    import json

    schema = schema_of(base)
    changed = base.assign(label=["yes"] * 90 + ["maybe"] * 10, extra=1)
    changed.loc[:30, "amount"] = -50.0
    payload: list[dict[str, Any]] = [a.to_dict() for a in against(changed, schema)]
    json.dumps(payload, allow_nan=False)
    assert {p["check"] for p in payload} >= {"label_shift", "unseen_labels", "out_of_range"}
