"""The deterministic split: seeded by row position, or by a hash of a key column; fixed expected
assignments guard against any change of the hash (a change would move rows between splits)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from preprocess.split import (
    TEST,
    TRAIN,
    VAL,
    SplitKeyError,
    assign,
    key_uniforms,
    row_uniforms,
    splitmix64,
)

KEYS = [f"customer-{i}" for i in range(20)]


def test_seeded_assignment_is_fixed() -> None:
    codes = assign(row_uniforms(0, 20, seed=42), 0.15, 0.15)
    assert codes.tolist() == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 2, 0, 0, 0, 0, 0]
    assert row_uniforms(0, 1, seed=42).tolist() == [0.2919636836366415]


def test_key_assignment_is_fixed() -> None:
    codes = assign(key_uniforms(pa.array(KEYS), "id"), 0.15, 0.15)
    assert codes.tolist() == [0, 0, 0, 1, 2, 2, 2, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    assert key_uniforms(pa.array(["customer-0"]), "id").tolist() == [0.6019690411933736]


def test_splitmix64_reference_value() -> None:
    # the first two outputs of the reference splitmix64 generator seeded with 0
    outputs = splitmix64(np.array([1, 2], dtype=np.uint64))
    assert [int(v) for v in outputs] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_seeded_split_does_not_depend_on_batching() -> None:
    whole = row_uniforms(0, 1000, seed=7)
    pieces = np.concatenate([row_uniforms(s, 100, seed=7) for s in range(0, 1000, 100)])
    np.testing.assert_array_equal(whole, pieces)


def test_key_split_follows_the_key_not_the_position() -> None:
    today = key_uniforms(pa.array(KEYS), "id")
    shuffled = [KEYS[i] for i in reversed(range(20))] + ["new-customer"]
    tomorrow = key_uniforms(pa.array(shuffled), "id")
    np.testing.assert_array_equal(tomorrow[:20][::-1], today)


def test_key_values_are_compared_as_text() -> None:
    as_int = key_uniforms(pa.array([5, 12]), "id")
    as_float = key_uniforms(pa.array([5.0, 12.0]), "id")
    as_text = key_uniforms(pa.array(["5", "12"]), "id")
    dictionary = key_uniforms(pa.array(["5", "12"]).dictionary_encode(), "id")
    for other in (as_float, as_text, dictionary):
        np.testing.assert_array_equal(as_int, other)


def test_null_keys_are_refused_naming_the_column() -> None:
    with pytest.raises(SplitKeyError, match=r"split key column 'id' has 1 null"):
        key_uniforms(pa.array(["a", None]), "id")


def seeded_codes(rows: int, val: float, test: float, seed: int) -> np.ndarray:
    """The split code of every row of a ``rows``-row input split by position."""
    return assign(row_uniforms(0, rows, seed), val, test)


def test_different_seed_gives_a_different_split() -> None:
    a = seeded_codes(1000, 0.15, 0.15, seed=42)
    b = seeded_codes(1000, 0.15, 0.15, seed=43)
    assert not np.array_equal(a == TEST, b == TEST)


@pytest.mark.parametrize(
    ("rows", "val", "test"), [(1000, 0.15, 0.15), (7, 0.2, 0.3), (1, 0.1, 0.1)]
)
def test_every_row_gets_the_split_of_its_number(rows: int, val: float, test: float) -> None:
    u = row_uniforms(0, rows, seed=0)
    codes = seeded_codes(rows, val, test, seed=0)
    np.testing.assert_array_equal(codes == TEST, u < test)
    np.testing.assert_array_equal(codes == VAL, (u >= test) & (u < test + val))
    np.testing.assert_array_equal(codes == TRAIN, u >= test + val)


def test_sizes_follow_the_fractions() -> None:
    sizes = np.bincount(seeded_codes(100_000, 0.1, 0.2, seed=1), minlength=3)
    # binomial: the standard deviation of the test count is about 126 rows
    assert abs(sizes[TEST] - 20_000) < 800
    assert abs(sizes[VAL] - 10_000) < 800
    assert sizes.sum() == 100_000


def test_uniforms_are_in_the_unit_interval() -> None:
    u = row_uniforms(0, 100_000, seed=3)
    assert u.min() >= 0.0
    assert u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
