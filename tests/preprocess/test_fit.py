"""Fitting batch by batch gives the transform a fit on one batch gives; the streaming statistics
(moments, bottom-k sample) agree with numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from demo.sample_data import TARGET, generate
from preprocess.fit import BottomKSample, FitOptions, Moments, TransformFitter
from tabular_model.transform import Scaling
from tests.preprocess.frames import feature_types, fit_train_rows


def fit_in_batches(frame: pd.DataFrame, options: FitOptions, batch: int) -> TransformFitter:
    """Plain Arrow batches of ``frame`` (text not dictionary-encoded), all rows train."""
    fitter = TransformFitter(TARGET, feature_types(frame, TARGET), options)
    for start in range(0, len(frame), batch):
        part = frame.iloc[start : start + batch]
        rows = pa.RecordBatch.from_pandas(part, preserve_index=False)
        fitter.update(rows, np.ones(len(part), dtype=bool), start)
    return fitter


@pytest.mark.parametrize("scaling", ["standard", "robust", "quantile"])
def test_batched_fit_equals_the_in_memory_fit(scaling: Scaling) -> None:
    frame = generate(2000, seed=3)
    options = FitOptions(scaling=scaling, min_frequency=3)
    whole = fit_train_rows(frame, TARGET, ("no", "yes"), options)
    batched = fit_in_batches(frame, options, batch=300).transform(("no", "yes"))
    assert batched.categorical == whole.categorical
    for a, b in zip(batched.numeric, whole.numeric, strict=True):
        assert (a.name, a.scaling, a.missing_indicator) == (b.name, b.scaling, b.missing_indicator)
        assert a.center == pytest.approx(b.center, rel=1e-12)
        assert a.scale == pytest.approx(b.scale, rel=1e-12)
        np.testing.assert_allclose(a.quantiles, b.quantiles, rtol=1e-12)


def test_categorical_batches_count_like_plain_values() -> None:
    frame = generate(500, seed=4)
    as_categories = frame.astype({"region": "category", "occupation": "category"})
    options = FitOptions(min_frequency=2)
    plain = fit_in_batches(frame, options, batch=200).transform(("no", "yes"))
    assert fit_in_batches(as_categories, options, batch=200).transform(("no", "yes")) == plain


def test_moments_merge_like_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(1e6, 3.0, (10_000, 2))  # a large mean: no cancellation allowed
    values[rng.random(10_000) < 0.1, 1] = np.nan
    moments = Moments(2)
    for start in range(0, 10_000, 777):
        moments.update(values[start : start + 777])
    np.testing.assert_allclose(moments.mean, np.nanmean(values, axis=0), rtol=1e-14)
    np.testing.assert_allclose(moments.std(), np.nanstd(values, axis=0), rtol=1e-9)
    assert moments.count.tolist() == [10_000, np.count_nonzero(~np.isnan(values[:, 1]))]


def test_bottom_k_sample_does_not_depend_on_batching() -> None:
    rng = np.random.default_rng(1)
    priorities, values = rng.random(5000), rng.normal(size=(5000, 1))
    one, many = BottomKSample(100, 1), BottomKSample(100, 1)
    one.update(priorities, values)
    for start in range(0, 5000, 333):
        many.update(priorities[start : start + 333], values[start : start + 333])
    expected = np.sort(values[np.argsort(priorities)[:100], 0])
    np.testing.assert_array_equal(np.sort(one.rows[:, 0]), expected)
    np.testing.assert_array_equal(np.sort(many.rows[:, 0]), expected)


def test_quantiles_from_a_capped_sample_are_close() -> None:
    rng = np.random.default_rng(2)
    values = rng.lognormal(10, 1, (200_000, 1))
    sample = BottomKSample(20_000, 1)
    for start in range(0, 200_000, 50_000):
        sample.update(rng.random(50_000), values[start : start + 50_000])
    assert len(sample.rows) == 20_000
    probabilities = np.array([0.25, 0.5, 0.75])
    (estimated,) = sample.quantiles(probabilities)
    assert estimated is not None
    # rank error of a 20 000-row sample: about 0.35 % of the rows (one standard deviation)
    ranks = np.searchsorted(np.sort(values[:, 0]), estimated) / 200_000
    np.testing.assert_allclose(ranks, probabilities, atol=0.02)


def test_a_column_without_values_has_no_quantiles() -> None:
    sample = BottomKSample(10, 2)
    sample.update(np.array([0.1, 0.2]), np.array([[1.0, np.nan], [2.0, np.nan]]))
    first, second = sample.quantiles(np.array([0.5]))
    assert first is not None and first.tolist() == [1.5]
    assert second is None
