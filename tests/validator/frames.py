"""Profiles of in-memory frames through the validator's own streaming code: the frame is one
record batch with its text columns dictionary-encoded, as ``python -m validator`` reads its
input."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from common import tables
from validator.profile import ColumnProfile, TableProfile
from validator.scan import profile_table


def profile_frame(
    frame: pd.DataFrame, target: str = "", keys: tuple[str, ...] = ()
) -> TableProfile:
    """The profile of ``frame`` with ``target``'s labels and the key ``keys`` checked."""
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    encoded = tables.dictionary_encode(batch)
    return profile_table(batch.schema, lambda: [encoded], target, keys)


def columns(frame: pd.DataFrame) -> dict[str, ColumnProfile]:
    """Each column's profile, by name."""
    return profile_frame(frame).columns
