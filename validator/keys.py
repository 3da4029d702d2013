"""A declared key (``--key``, one or more columns) checked in bounded memory.

The pass over the data keeps one 64-bit hash per row (8 bytes a row, whatever the key's width;
equal keys give equal hashes, compared as pandas compares them: nulls alike, -0.0 equal to 0.0).
Sorting them at the end counts the rows whose key repeats an earlier row's, as
``DataFrame.duplicated`` would, except that two different keys may share a hash: about
``rows**2 / 2**65``, under one in a million below 6 million rows. Only when keys repeat, a second
pass finds the first few repeated keys (in row order) for the report, and stops there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from validator.accumulate import text_form

NULL_HASH = np.uint64(0x6E75_6C6C_6B65_7921)  # the hash of a null key part
EXAMPLES = 5  # repeated keys quoted in the report


def column_hashes(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A uint64 hash per row of one key column, and the rows where it is null (NaN too)."""
    kind = column.type
    if pa.types.is_dictionary(kind):  # hashed once per distinct value
        codes = column.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        words = np.asarray(text_form(column.dictionary), dtype=object)
        null = codes < 0
        return np.append(pd.util.hash_array(words), NULL_HASH)[codes], null
    if pa.types.is_integer(kind):
        null = column.is_null().to_numpy(zero_copy_only=False)
        numbers = column.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
        hashes = pd.util.hash_array(numbers)
    elif pa.types.is_floating(kind):
        numbers = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64) + 0.0
        null = np.isnan(numbers)
        hashes = pd.util.hash_array(np.where(null, 0.0, numbers))
    else:
        null = column.is_null().to_numpy(zero_copy_only=False)
        words = pd.Series(column.to_pandas()).astype("string").to_numpy(object, na_value="")
        hashes = pd.util.hash_array(words)
    return np.where(null, NULL_HASH, hashes), null


def row_hashes(batch: pa.RecordBatch, columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A uint64 hash of each row's key, and the rows where a part of the key is null."""
    combined: np.ndarray | None = None
    any_null = np.zeros(batch.num_rows, dtype=bool)
    for name in columns:
        hashes, null = column_hashes(batch.column(name))
        # Rehashing what came before keeps the order of the parts: (a, b) is not (b, a).
        combined = hashes if combined is None else pd.util.hash_array(combined) ^ hashes
        any_null |= null
    assert combined is not None, "a key has at least one column"
    return combined, any_null


@dataclass
class KeyHashes:
    """The key's hash of every row seen, and how many rows had a null key part."""

    columns: tuple[str, ...]
    null_rows: int = 0
    parts: list[np.ndarray] = field(default_factory=list)

    def update(self, batch: pa.RecordBatch) -> None:
        hashes, null = row_hashes(batch, self.columns)
        self.null_rows += int(null.sum())
        self.parts.append(hashes)

    def repeated(self) -> tuple[int, np.ndarray]:
        """Rows whose key repeats an earlier row's, and the sorted hashes of repeated keys; the
        per-batch hashes are released (call once, at the end of the pass)."""
        hashes = np.concatenate(self.parts) if self.parts else np.empty(0, np.uint64)
        self.parts = []  # one copy of the hashes at a time
        hashes.sort()
        same = hashes[1:] == hashes[:-1]
        return int(same.sum()), np.unique(hashes[1:][same])


def _describe(batch: pa.RecordBatch, columns: tuple[str, ...], row: int) -> str:
    """A key as the report quotes it: ``5``, or ``(2, 0)`` for a key of several columns."""
    parts = [batch.column(name)[row].as_py() for name in columns]
    return str(tuple(parts)) if len(parts) > 1 else str(parts[0])


def repeated_examples(
    batches: Iterable[pa.RecordBatch], columns: tuple[str, ...], repeated: np.ndarray
) -> list[str]:
    """The first ``EXAMPLES`` distinct keys (in row order) that repeat an earlier row's key;
    ``repeated`` holds their sorted hashes (from ``KeyHashes.repeated``)."""
    seen = np.zeros(len(repeated), dtype=bool)
    quoted: set[int] = set()
    found: list[str] = []
    if not len(repeated):
        return found
    for batch in batches:
        hashes, _ = row_hashes(batch, columns)
        slots = np.minimum(np.searchsorted(repeated, hashes), len(repeated) - 1)
        rows = np.flatnonzero(repeated[slots] == hashes)
        slots = slots[rows]
        earlier = seen[slots]  # the key was seen in an earlier batch
        first_here = np.zeros(len(slots), dtype=bool)
        first_here[np.unique(slots, return_index=True)[1]] = True
        seen[slots] = True
        rows, slots = rows[earlier | ~first_here], slots[earlier | ~first_here]
        # Each repeated key once, at its first repeating row, in row order.
        for index in np.sort(np.unique(slots, return_index=True)[1]).tolist():
            if int(slots[index]) not in quoted:
                quoted.add(int(slots[index]))
                found.append(_describe(batch, columns, int(rows[index])))
                if len(found) == EXAMPLES:
                    return found
    return found
