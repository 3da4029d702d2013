"""The input profiled in one pass over its record batches (``validator.accumulate`` for the
columns, ``validator.keys`` for a declared key); a second pass only when keys repeat, to quote
the first repeated ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyarrow as pa

from common.tables import column_kinds
from validator.accumulate import (
    NumericAccumulator,
    TextAccumulator,
    row_priorities,
    sample_size,
    storage_kind,
)
from validator.keys import KeyHashes, repeated_examples
from validator.profile import KeyProfile, LabelKind, TableProfile, label_values

Batches = Callable[[], Iterable[pa.RecordBatch]]  # each call reads the rows again, in order


class TableProfiler:
    """Accumulates every column of ``schema``, the labels of ``target`` and the hashes of the
    key ``keys`` (when the data has all its columns), batch by batch."""

    def __init__(self, schema: pa.Schema, target: str, keys: tuple[str, ...]) -> None:
        self.schema, self.rows = schema, 0
        self.kinds = column_kinds(schema)
        k = sample_size(sum(kind == "numeric" for kind in self.kinds.values()))
        self.columns = {
            name: NumericAccumulator(k) if kind == "numeric" else TextAccumulator()
            for name, kind in self.kinds.items()
        }
        self.target = target if target in self.kinds else None
        labels = self.columns.get(target)
        # A categorical target's value counts are its labels: counted once.
        self.labels = labels if isinstance(labels, TextAccumulator) else TextAccumulator()
        self.key_columns = keys
        self.missing_keys = tuple(k for k in keys if k not in self.kinds)
        self.keys = KeyHashes(keys) if keys and not self.missing_keys else None

    def update(self, batch: pa.RecordBatch) -> None:
        """Add the next batch of rows (the batches in input order)."""
        priorities = row_priorities(self.rows, batch.num_rows)
        for name, accumulator in self.columns.items():
            if isinstance(accumulator, NumericAccumulator):
                accumulator.update(batch.column(name), priorities)
            else:
                accumulator.update(batch.column(name))
        if self.target is not None and self.labels is not self.columns[self.target]:
            self.labels.update(batch.column(self.target))
        if self.keys is not None:
            self.keys.update(batch)
        self.rows += batch.num_rows

    def key_profile(self, batches: Batches) -> KeyProfile | None:
        """The key's checks; reads ``batches`` again only when keys repeat."""
        if not self.key_columns:
            return None
        if self.keys is None:
            return KeyProfile(self.key_columns, missing=self.missing_keys)
        duplicates, repeated = self.keys.repeated()
        examples = repeated_examples(batches(), self.key_columns, repeated) if duplicates else []
        return KeyProfile(self.key_columns, (), self.keys.null_rows, duplicates, tuple(examples))

    def result(self, batches: Batches) -> TableProfile:
        """The profile of every batch added; ``batches`` reads them again for key examples."""
        columns = {
            name: accumulator.profile(
                name,
                self.kinds[name],
                storage_kind(self.schema.field(name).type, accumulator.nulls > 0),
            )
            for name, accumulator in self.columns.items()
        }
        labels = dict(self.labels.counts) if self.target is not None else None
        values = label_values(labels, self.label_kind()) if labels is not None else None
        return TableProfile(self.rows, columns, labels, self.key_profile(batches), values)

    def label_kind(self) -> LabelKind:
        """How pandas reads the target: numbers, booleans (with or without nulls) or text."""
        assert self.target is not None
        if self.kinds[self.target] == "numeric":
            return "numeric"
        kind = self.schema.field(self.target).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        return "boolean" if pa.types.is_boolean(kind) else "text"


def profile_table(
    schema: pa.Schema, batches: Batches, target: str, keys: tuple[str, ...] = ()
) -> TableProfile:
    """The profile of the rows that ``batches()`` yields (columns of ``schema``; text columns
    may come dictionary-encoded), with ``target``'s labels and the key ``keys`` checked."""
    profiler = TableProfiler(schema, target, keys)
    for batch in batches():
        profiler.update(batch)
    return profiler.result(batches)
