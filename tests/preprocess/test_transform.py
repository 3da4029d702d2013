"""The fitted transform: train-only statistics, missing indicators, vocabularies with an unknown
code, label encoding, and a JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from preprocess.transform import (
    UNKNOWN_CODE,
    CategoricalColumn,
    NumericColumn,
    TableTransform,
    TransformError,
    as_label,
    decode_target,
    encode_features,
    encode_target,
    fit_transform,
    logical_type,
)

CLASSES = ("no", "yes")


@pytest.fixture
def train() -> pd.DataFrame:
    return pd.DataFrame({
        "age": [20, 30, 40, 50],
        "income": [1000.0, np.nan, 3000.0, 2000.0],
        "constant": [5.0, 5.0, 5.0, 5.0],
        "region": ["north", "south", "north", None],
        "vip": [True, False, True, True],
        "label": ["no", "yes", "no", "yes"],
    })  # fmt: skip


@pytest.fixture
def transform(train: pd.DataFrame) -> TableTransform:
    return fit_transform(train, "label", CLASSES)


def test_logical_types(train: pd.DataFrame) -> None:
    kinds = {name: logical_type(train[name]) for name in train.columns}
    assert kinds == {
        "age": "numeric",
        "income": "numeric",
        "constant": "numeric",
        "region": "categorical",
        "vip": "categorical",
        "label": "categorical",
    }
    assert logical_type(pd.Series([1, None], dtype="Int64")) == "numeric"
    assert logical_type(pd.Series([True, None], dtype="boolean")) == "categorical"


def test_fit_excludes_the_target_and_orders_columns(transform: TableTransform) -> None:
    assert transform.target == "label"
    assert transform.classes == CLASSES
    assert [c.name for c in transform.numeric] == ["age", "income", "constant"]
    assert [c.name for c in transform.categorical] == ["region", "vip"]
    assert transform.input_columns == ["age", "income", "constant", "region", "vip"]
    assert transform.numeric_feature_names == ["age", "income", "constant", "income__missing"]
    assert transform.feature_count == 6


def test_numeric_statistics_come_from_train(transform: TableTransform) -> None:
    age, income, constant = transform.numeric
    assert age == NumericColumn("age", 35.0, pytest.approx(math.sqrt(125.0)), False)
    assert income.mean == pytest.approx(2000.0)
    assert income.std == pytest.approx(math.sqrt(2_000_000 / 3))  # population std of 3 values
    assert income.missing_indicator is True
    assert constant.std == 1.0  # a constant column is not divided by zero


def test_encoding_uses_train_statistics(transform: TableTransform) -> None:
    other = pd.DataFrame({
        "age": [35, 100],
        "income": [np.nan, 4000.0],
        "constant": [5.0, 7.0],
        "region": ["south", "north"],
        "vip": [False, True],
    })  # fmt: skip
    encoded = encode_features(transform, other)
    assert encoded.numeric.dtype == np.float32
    assert encoded.numeric.shape == (2, 4)
    age_std = math.sqrt(125.0)
    income_std = math.sqrt(2_000_000 / 3)
    expected = np.array([
        [0.0, 0.0, 0.0, 1.0],  # missing income -> 0 and indicator 1
        [(100 - 35) / age_std, (4000 - 2000) / income_std, 2.0, 0.0],
    ])  # fmt: skip
    np.testing.assert_allclose(encoded.numeric, expected, rtol=1e-6)


def test_train_encodes_to_zero_mean_unit_variance(
    train: pd.DataFrame, transform: TableTransform
) -> None:
    numeric = encode_features(transform, train).numeric
    assert numeric[:, 0].mean() == pytest.approx(0.0, abs=1e-6)
    assert numeric[:, 0].std() == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_array_equal(numeric[:, 3], [0.0, 1.0, 0.0, 0.0])


def test_missing_value_without_indicator_encodes_as_mean(transform: TableTransform) -> None:
    frame = pd.DataFrame({
        "age": [np.nan], "income": [2000.0], "constant": [5.0], "region": ["north"], "vip": [True]
    })  # fmt: skip
    encoded = encode_features(transform, frame)
    assert encoded.numeric.tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_vocabulary_is_ordered_by_frequency_then_value() -> None:
    frame = pd.DataFrame({"c": ["b", "a", "c", "c", "b", "d", None], "y": [0, 1] * 3 + [0]})
    (column,) = fit_transform(frame, "y", (0, 1)).categorical
    assert column == CategoricalColumn("c", ("b", "c", "a", "d"))
    assert column.cardinality == 5


def test_categories_encode_with_unknown_code_zero(transform: TableTransform) -> None:
    region, vip = transform.categorical
    assert region.vocabulary == ("north", "south")
    assert vip.vocabulary == ("True", "False")
    frame = pd.DataFrame({
        "age": [1, 2, 3, 4],
        "income": [1.0, 2.0, 3.0, 4.0],
        "constant": [5.0] * 4,
        "region": ["north", "south", "atlantis", None],
        "vip": [False, True, None, True],
    })  # fmt: skip
    encoded = encode_features(transform, frame)
    assert encoded.categorical.dtype == np.int64
    assert encoded.categorical.tolist() == [[1, 2], [2, 1], [UNKNOWN_CODE, 0], [UNKNOWN_CODE, 1]]


def test_numeric_strings_are_coerced_and_garbage_is_missing(transform: TableTransform) -> None:
    frame = pd.DataFrame({
        "age": ["35", "n/a"], "income": ["2000", "lots"], "constant": [5.0, 5.0],
        "region": ["north", "north"], "vip": [True, True],
    })  # fmt: skip
    numeric = encode_features(transform, frame).numeric
    assert numeric.tolist() == [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def test_encoding_refuses_missing_columns(transform: TableTransform) -> None:
    frame = pd.DataFrame({"age": [1], "income": [1.0], "constant": [1.0]})
    with pytest.raises(TransformError, match=r"missing column\(s\) \['region', 'vip'\]"):
        encode_features(transform, frame)


def test_extra_columns_are_ignored(train: pd.DataFrame, transform: TableTransform) -> None:
    wider = train.assign(extra=1)
    a = encode_features(transform, train)
    b = encode_features(transform, wider)
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.categorical, b.categorical)


def test_target_encoding_follows_class_order(transform: TableTransform) -> None:
    codes = encode_target(transform, pd.Series(["yes", "no", "no"]))
    assert codes.dtype == np.int64
    assert codes.tolist() == [1, 0, 0]
    assert decode_target(transform, codes) == ["yes", "no", "no"]


def test_unseen_label_is_refused(transform: TableTransform) -> None:
    with pytest.raises(TransformError, match=r"target 'label' has labels not in .*\['maybe'\]"):
        encode_target(transform, pd.Series(["yes", "maybe", "no"]))


def test_numeric_labels_encode_from_numpy_values() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": np.array([3, 1, 2], dtype="int64")})
    transform = fit_transform(frame, "y", (1, 2, 3))
    assert encode_target(transform, frame["y"]).tolist() == [2, 0, 1]
    assert as_label(np.int64(3)) == 3
    assert type(as_label(np.int64(3))) is int
    with pytest.raises(TransformError, match=r"\['4'\]"):
        encode_target(transform, pd.Series([1, 4]))


def test_json_round_trip(train: pd.DataFrame, transform: TableTransform) -> None:
    data = json.loads(json.dumps(transform.to_dict(), allow_nan=False))
    assert data["version"] == 1
    restored = TableTransform.from_dict(data)
    assert restored == transform
    a = encode_features(transform, train)
    b = encode_features(restored, train)
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.categorical, b.categorical)


def test_json_round_trip_keeps_numeric_and_bool_classes() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [True, False]})
    transform = fit_transform(frame, "y", (False, True))
    restored = TableTransform.from_dict(json.loads(json.dumps(transform.to_dict())))
    assert restored.classes == (False, True)
    assert encode_target(restored, frame["y"]).tolist() == [1, 0]


def test_from_dict_refuses_another_version(transform: TableTransform) -> None:
    data = {**transform.to_dict(), "version": 2}
    with pytest.raises(TransformError, match="unsupported transform version 2"):
        TableTransform.from_dict(data)


def test_all_missing_numeric_column_fits_to_neutral_statistics() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan, np.nan], "y": ["a", "b", "a"]})
    (column,) = fit_transform(frame, "y", ("a", "b")).numeric
    assert column == NumericColumn("x", 0.0, 1.0, True)


def test_no_features_gives_empty_arrays() -> None:
    frame = pd.DataFrame({"y": ["a", "b"]})
    transform = fit_transform(frame, "y", ("a", "b"))
    encoded = encode_features(transform, frame)
    assert encoded.numeric.shape == (2, 0)
    assert encoded.categorical.shape == (2, 0)
    assert transform.feature_count == 0


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_unknown_category_encoding_uses_no_deprecated_pandas_behaviour(
    transform: TableTransform,
) -> None:
    frame = pd.DataFrame({
        "age": [1], "income": [1.0], "constant": [5.0], "region": ["atlantis"], "vip": [True]
    })  # fmt: skip
    assert encode_features(transform, frame).categorical.tolist() == [[UNKNOWN_CODE, 1]]
