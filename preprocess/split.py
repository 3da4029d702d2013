"""Deterministic train/val/test assignment, one row at a time, so it can run batch by batch.

Every row gets a number ``u`` in [0, 1): test when ``u < test_fraction``, val when
``u < test_fraction + val_fraction``, train otherwise. ``u`` comes from a hash, never from a
random generator's stream, so it does not depend on how the input is cut into batches, on the
numpy version, or on the process:

- seeded (default): ``u = splitmix64(seed, row position)``; the same file and seed give the same
  split, but a row that moves (new rows inserted before it) may change split;
- ``--split-key COLUMN``: ``u = siphash-2-4(key as UTF-8 text)``; a row with the same key lands in
  the same split on every day, whatever else the file holds (the seed is not used).

A split can also be given outright: ``--split-column COLUMN`` holds ``train``, ``val`` or ``test``
per row (a benchmark's fixed test set, a time cut made upstream); ``column_codes`` reads it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SPLITS = ("train", "val", "test")
TRAIN, VAL, TEST = 0, 1, 2  # split codes, in the order of SPLITS
# pandas' siphash key; fixed here (and passed explicitly) so an upgrade cannot move rows.
KEY_HASH_KEY = "tabular-split-01"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


class SplitKeyError(ValueError):
    """A split key column that cannot be hashed (nulls), or a split column with values other
    than the split names."""


def splitmix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 (Steele et al.): ``splitmix64(n)`` is the n-th output of the reference generator
    seeded with 0. Elementwise on uint64; the arithmetic wraps around on purpose."""
    z = values.astype(np.uint64) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))  # type: ignore[no-any-return]


def to_unit(hashes: np.ndarray) -> np.ndarray:
    """uint64 hashes → float64 in [0, 1) from their top 53 bits (exact in a double)."""
    return (hashes >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))  # type: ignore[no-any-return]


def position_uniforms(positions: np.ndarray, seed: int) -> np.ndarray:
    """``u`` for the rows at these (0-based) positions of the input."""
    salt = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    return to_unit(splitmix64(positions.astype(np.uint64) ^ salt))


def row_uniforms(start: int, rows: int, seed: int) -> np.ndarray:
    """``u`` for the rows at positions ``start .. start + rows - 1`` of the input."""
    return position_uniforms(np.arange(start, start + rows, dtype=np.uint64), seed)


def key_uniforms(keys: pa.Array | pa.ChunkedArray, column: str) -> np.ndarray:
    """``u`` from the key values, written as text (``5``, ``5.0`` and ``"5"`` are one key)."""
    if keys.null_count:
        raise SplitKeyError(f"split key column {column!r} has {keys.null_count} null value(s)")
    text = pc.cast(keys, pa.string()).to_numpy(zero_copy_only=False)
    hashes = pd.util.hash_array(text, encoding="utf8", hash_key=KEY_HASH_KEY, categorize=True)
    return to_unit(hashes)


def column_codes(names: pa.Array | pa.ChunkedArray, column: str) -> np.ndarray:
    """Split codes (int8) from a column of split names; anything else, nulls included, is
    refused with the offending values named."""
    text = pc.cast(names, pa.string())
    codes = pc.index_in(text, value_set=pa.array(SPLITS))
    if codes.null_count:
        bad = pc.unique(pc.filter(text, pc.is_null(codes))).to_pylist()
        raise SplitKeyError(
            f"split column {column!r} holds {codes.null_count} value(s) other than "
            f"{list(SPLITS)}: {bad[:10]}"
        )
    return codes.to_numpy(zero_copy_only=False).astype(np.int8)  # type: ignore[no-any-return]


def assign(uniforms: np.ndarray, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Split codes (int8: TRAIN, VAL or TEST) for rows with the given ``u``."""
    codes = np.full(uniforms.shape, TRAIN, dtype=np.int8)
    codes[uniforms < test_fraction + val_fraction] = VAL
    codes[uniforms < test_fraction] = TEST
    return codes
