"""A declared key checked by row hashes: the same counts and examples as pandas'
``DataFrame.duplicated`` on the whole frame, however the rows are batched."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from common import tables
from validator.keys import EXAMPLES, KeyHashes, repeated_examples


def batches_of(frame: pd.DataFrame, rows: int) -> list[pa.RecordBatch]:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return [tables.dictionary_encode(b) for b in table.to_batches(max_chunksize=rows)]


def check(frame: pd.DataFrame, keys: tuple[str, ...], rows: int) -> tuple[int, int, list[str]]:
    """Null-key rows, repeated-key rows and the examples, from batches of ``rows`` rows."""
    hashes = KeyHashes(keys)
    for batch in batches_of(frame, rows):
        hashes.update(batch)
    duplicates, repeated = hashes.repeated()
    examples = repeated_examples(iter(batches_of(frame, rows)), keys, repeated)
    return hashes.null_rows, duplicates, examples


def expected(frame: pd.DataFrame, keys: tuple[str, ...]) -> tuple[int, int, list[str]]:
    """What the whole-frame check gave: pandas' ``duplicated``, first repeats in row order."""
    part = frame[list(keys)]
    duplicated = part.duplicated(keep="first")
    repeats = part[duplicated].drop_duplicates().head(EXAMPLES)
    rows = [[None if pd.isna(v) else v for v in row] for row in repeats.astype(object).values]
    shown = [str(tuple(r)) if len(keys) > 1 else str(r[0]) for r in rows]
    return int(part.isna().any(axis=1).sum()), int(duplicated.sum()), shown


@pytest.fixture
def keyed() -> pd.DataFrame:
    """3 000 rows with repeats among ints, floats (NaN and -0.0 too), text and booleans."""
    rng = np.random.default_rng(9)
    rows = 3000
    floats = rng.integers(0, 40, rows).astype(float)
    floats[rng.random(rows) < 0.02] = np.nan
    floats[rng.random(rows) < 0.05] = -0.0
    return pd.DataFrame({
        "id": rng.permutation(rows) + 2**60,  # large ids: no float rounding may merge them
        "shop": rng.integers(0, 60, rows),
        "price": floats,
        "city": rng.choice(np.array(["ams", "bcn", "cph", None], dtype=object), rows),
        "open": rng.choice([True, False], rows),
    })  # fmt: skip


@pytest.mark.parametrize(
    "keys",
    [("id",), ("shop",), ("price",), ("city",), ("shop", "city"), ("city", "price", "open")],
)
@pytest.mark.parametrize("rows", [3000, 256, 7])
def test_key_checks_match_pandas_however_batched(
    keyed: pd.DataFrame, keys: tuple[str, ...], rows: int
) -> None:
    nulls, duplicates, examples = check(keyed, keys, rows)
    want_nulls, want_duplicates, want_examples = expected(keyed, keys)
    assert (nulls, duplicates) == (want_nulls, want_duplicates)
    assert examples == want_examples


def test_minus_zero_equals_zero_and_order_of_parts_counts(keyed: pd.DataFrame) -> None:
    frame = pd.DataFrame({"a": [0.0, -0.0, 1.0, 2.0], "b": [2.0, 1.0, 1.0, 2.0]})
    assert check(frame, ("a",), 4)[1] == 1  # 0.0 and -0.0 are one key
    assert check(frame, ("a", "b"), 4)[1] == 0  # (1, 1) and (2, 2): not (1, 2) or (2, 1)
    assert check(frame, ("b",), 4)[1] == 2


def test_unique_keys_need_no_second_pass() -> None:
    hashes = KeyHashes(("id",))
    hashes.update(batches_of(pd.DataFrame({"id": range(10)}), 10)[0])
    assert hashes.repeated()[0] == 0


def test_examples_stop_after_enough_are_found() -> None:
    frame = pd.DataFrame({"id": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]})
    hashes = KeyHashes(("id",))
    hashes.update(batches_of(frame, 100)[0])
    _, repeated = hashes.repeated()
    read: list[int] = []

    def counted() -> Iterator[pa.RecordBatch]:
        for batch in batches_of(frame, 2):
            read.append(batch.num_rows)
            yield batch

    assert repeated_examples(counted(), ("id",), repeated) == ["1", "2", "3", "4", "5"]
    assert len(read) == 5  # the last two batches were never read
