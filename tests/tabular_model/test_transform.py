"""The fitted transform: train-only statistics for each scaling, missing indicators, vocabularies
with missing/other codes, label encoding, JSON round trips and version 1 files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from preprocess.fit import FitOptions
from tabular_model.transform import (
    MISSING_CODE,
    OTHER_CODE,
    CategoricalColumn,
    NumericColumn,
    TableTransform,
    TransformError,
    as_label,
    decode_target,
    encode_features,
    encode_target,
    logical_type,
)
from tests.preprocess.frames import fit_train_rows

CLASSES = ("no", "yes")
STANDARD = FitOptions(scaling="standard", min_frequency=1)


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
    return fit_train_rows(train, "label", CLASSES, STANDARD)


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


def test_standard_statistics_come_from_train(transform: TableTransform) -> None:
    age, income, constant = transform.numeric
    assert age == NumericColumn("age", 35.0, pytest.approx(math.sqrt(125.0)), False)  # type: ignore[arg-type]
    assert income.center == pytest.approx(2000.0)
    assert income.scale == pytest.approx(math.sqrt(2_000_000 / 3))  # population std
    assert income.missing_indicator is True
    assert constant.scale == 1.0  # a constant column is not divided by zero


def test_robust_scaling_uses_median_and_iqr(train: pd.DataFrame) -> None:
    options = FitOptions(scaling="robust", min_frequency=1)
    age, income, constant = fit_train_rows(train, "label", CLASSES, options).numeric
    assert (age.scaling, age.center, age.scale) == ("robust", 35.0, 15.0)  # q25 27.5, q75 42.5
    assert (income.center, income.scale) == (2000.0, 1000.0)
    assert constant.scale == 1.0  # zero IQR and zero std: not divided by zero


def test_robust_scaling_falls_back_to_std_for_a_zero_iqr() -> None:
    frame = pd.DataFrame({"x": [0.0] * 8 + [10.0, 20.0], "y": ["a", "b"] * 5})
    (column,) = fit_train_rows(frame, "y", ("a", "b"), FitOptions(scaling="robust")).numeric
    assert column.center == 0.0
    assert column.scale == pytest.approx(np.std(frame["x"]))


def test_quantile_scaling_maps_train_to_minus_one_one(train: pd.DataFrame) -> None:
    options = FitOptions(scaling="quantile", min_frequency=1)
    transform = fit_train_rows(train, "label", CLASSES, options)
    age = transform.numeric[0]
    assert age.scaling == "quantile"
    assert len(age.quantiles) == 101
    encoded = encode_features(transform, train).numeric[:, 0]
    np.testing.assert_allclose(encoded, [-1.0, -1 / 3, 1 / 3, 1.0], atol=1e-6)
    outside = pd.DataFrame({**{c: [0, 1000] for c in transform.input_columns}})
    np.testing.assert_array_equal(encode_features(transform, outside).numeric[:, 0], [-1.0, 1.0])


def test_quantile_scaling_puts_a_repeated_value_in_the_middle() -> None:
    frame = pd.DataFrame({"x": [0.0] * 6 + [1.0, 2.0, 3.0, 4.0], "y": ["a", "b"] * 5})
    transform = fit_train_rows(frame, "y", ("a", "b"), FitOptions(scaling="quantile"))
    zero = encode_features(transform, pd.DataFrame({"x": [0.0]})).numeric[0, 0]
    # Interpolated quantiles are 0 for p up to 5/9 (0.55 on the percentile grid): 0 maps to
    # the middle of [0, 0.55], not to either end.
    assert zero == pytest.approx(2 * 0.275 - 1, abs=1e-6)


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
    age_std, income_std = math.sqrt(125.0), math.sqrt(2_000_000 / 3)
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


def test_vocabulary_is_ordered_by_frequency_then_value() -> None:
    frame = pd.DataFrame({"c": ["b", "a", "c", "c", "b", "d", None], "y": [0, 1] * 3 + [0]})
    (column,) = fit_train_rows(frame, "y", (0, 1), FitOptions(min_frequency=1)).categorical
    assert column == CategoricalColumn("c", ("b", "c", "a", "d"), other_code=True)
    assert column.cardinality == 6  # missing, other and four values


def test_min_frequency_sends_rare_values_to_the_other_code() -> None:
    frame = pd.DataFrame({"c": ["b", "a", "c", "c", "b", "d", "c"], "y": [0, 1] * 3 + [0]})
    transform = fit_train_rows(frame, "y", (0, 1), FitOptions(min_frequency=2))
    (column,) = transform.categorical
    assert column.vocabulary == ("c", "b")
    codes = encode_features(transform, frame).categorical[:, 0]
    assert codes.tolist() == [3, OTHER_CODE, 2, 2, 3, OTHER_CODE, 2]


def test_categories_encode_missing_other_and_vocabulary(train: pd.DataFrame) -> None:
    transform = fit_train_rows(train, "label", CLASSES, STANDARD)
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
    assert encoded.categorical.tolist() == [[2, 3], [3, 2], [OTHER_CODE, MISSING_CODE], [0, 2]]


def test_categorical_dtype_encodes_like_plain_values(transform: TableTransform) -> None:
    frame = pd.DataFrame({
        "age": [1, 2, 3, 4, 5], "income": [1.0] * 5, "constant": [5.0] * 5,
        "region": ["south", None, "atlantis", "north", "south"],
        "vip": [True, False, None, True, False],
    })  # fmt: skip
    as_categories = frame.astype({"region": "category", "vip": "category"})
    plain = encode_features(transform, frame).categorical
    np.testing.assert_array_equal(encode_features(transform, as_categories).categorical, plain)


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
    a = encode_features(transform, train)
    b = encode_features(transform, train.assign(extra=1))
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.categorical, b.categorical)


def test_target_encoding_follows_class_order(transform: TableTransform) -> None:
    for labels in (
        pd.Series(["yes", "no", "no"]),
        pd.Series(["yes", "no", "no"], dtype="category"),
    ):
        codes = encode_target(transform, labels)
        assert codes.dtype == np.int64
        assert codes.tolist() == [1, 0, 0]
    assert decode_target(transform, np.array([1, 0])) == ["yes", "no"]


def test_unseen_label_is_refused(transform: TableTransform) -> None:
    with pytest.raises(TransformError, match=r"target 'label' has labels not in .*\['maybe'\]"):
        encode_target(transform, pd.Series(["yes", "maybe", "no"]))


def test_numeric_labels_encode_from_numpy_values() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": np.array([3, 1, 2], dtype="int64")})
    transform = fit_train_rows(frame, "y", (1, 2, 3))
    assert encode_target(transform, frame["y"]).tolist() == [2, 0, 1]
    assert type(as_label(np.int64(3))) is int
    with pytest.raises(TransformError, match=r"\['4'\]"):
        encode_target(transform, pd.Series([1, 4]))


@pytest.mark.parametrize("scaling", ["standard", "robust", "quantile"])
def test_json_round_trip(train: pd.DataFrame, scaling: str) -> None:
    options = FitOptions(scaling=scaling, min_frequency=2)  # type: ignore[arg-type]
    transform = fit_train_rows(train, "label", CLASSES, options)
    data = json.loads(json.dumps(transform.to_dict(), allow_nan=False))
    assert data["version"] == 2
    restored = TableTransform.from_dict(data)
    assert restored == transform
    a, b = encode_features(transform, train), encode_features(restored, train)
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.categorical, b.categorical)


def test_json_round_trip_keeps_numeric_and_bool_classes() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [True, False]})
    transform = fit_train_rows(frame, "y", (False, True))
    restored = TableTransform.from_dict(json.loads(json.dumps(transform.to_dict())))
    assert restored.classes == (False, True)
    assert encode_target(restored, frame["y"]).tolist() == [1, 0]


VERSION_1 = {
    "version": 1,
    "target": "label",
    "classes": ["no", "yes"],
    "numeric": [{"name": "age", "mean": 35.0, "std": 10.0, "missing_indicator": True}],
    "categorical": [{"name": "region", "vocabulary": ["north", "south"]}],
}


def test_a_version_1_transform_still_encodes_as_it_did() -> None:
    transform = TableTransform.from_dict(VERSION_1)
    (region,) = transform.categorical
    assert region.cardinality == 3  # version 1: code 0 for missing and unseen, no other code
    frame = pd.DataFrame({"age": [45.0, None], "region": ["south", "atlantis"]})
    encoded = encode_features(transform, frame)
    assert encoded.numeric.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert encoded.categorical.tolist() == [[2], [0]]


def test_from_dict_refuses_another_version(transform: TableTransform) -> None:
    with pytest.raises(TransformError, match=r"unsupported transform version 4 .*rerun"):
        TableTransform.from_dict({**transform.to_dict(), "version": 4})


def test_from_dict_refuses_an_unknown_scaling(transform: TableTransform) -> None:
    data = transform.to_dict()
    data["numeric"][0]["scaling"] = "log"
    with pytest.raises(TransformError, match=r"column 'age': unknown scaling 'log'"):
        TableTransform.from_dict(data)


def test_all_missing_numeric_column_fits_to_neutral_statistics() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan, np.nan], "y": ["a", "b", "a"]})
    for scaling in ("standard", "robust", "quantile"):
        options = FitOptions(scaling=scaling)  # type: ignore[arg-type]
        (column,) = fit_train_rows(frame, "y", ("a", "b"), options).numeric
        assert column == NumericColumn("x", 0.0, 1.0, True)


def test_no_features_gives_empty_arrays() -> None:
    frame = pd.DataFrame({"y": ["a", "b"]})
    transform = fit_train_rows(frame, "y", ("a", "b"))
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
    assert encode_features(transform, frame).categorical.tolist() == [[OTHER_CODE, 2]]
