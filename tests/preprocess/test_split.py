"""The seeded train/val/test split."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.split import split_indices


def test_same_seed_gives_the_same_split() -> None:
    a = split_indices(1000, 0.15, 0.15, seed=42)
    b = split_indices(1000, 0.15, 0.15, seed=42)
    assert a.keys() == b.keys() == {"train", "val", "test"}
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_different_seed_gives_a_different_split() -> None:
    a = split_indices(1000, 0.15, 0.15, seed=42)
    b = split_indices(1000, 0.15, 0.15, seed=43)
    assert not np.array_equal(a["test"], b["test"])
    assert not np.array_equal(a["train"], b["train"])


@pytest.mark.parametrize(
    ("rows", "val", "test"), [(1000, 0.15, 0.15), (7, 0.2, 0.3), (3000, 0.1, 0.25), (1, 0.1, 0.1)]
)
def test_partitions_cover_every_row_exactly_once(rows: int, val: float, test: float) -> None:
    parts = split_indices(rows, val, test, seed=0)
    everything = np.concatenate([parts["train"], parts["val"], parts["test"]])
    assert len(everything) == rows
    np.testing.assert_array_equal(np.sort(everything), np.arange(rows))
    for idx in parts.values():
        assert idx.dtype.kind == "i"
        np.testing.assert_array_equal(idx, np.sort(idx))


def test_sizes_follow_the_fractions() -> None:
    parts = split_indices(1000, 0.1, 0.2, seed=1)
    assert {k: len(v) for k, v in parts.items()} == {"test": 200, "val": 100, "train": 700}


def test_split_is_shuffled() -> None:
    parts = split_indices(1000, 0.15, 0.15, seed=5)
    assert not np.array_equal(parts["test"], np.arange(150))
    assert parts["test"].max() > 850
