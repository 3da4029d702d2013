"""The two passes of ``python -m preprocess`` over the input, batch by batch (memory stays
bounded by the batch size, not the input size):

1. ``scan``: assign each row its split, check the data (labels, nulls, infinite values) and fit
   the transform on the train rows;
2. ``write_splits``: assign the same splits again, encode every row with the fitted transform
   (``encode_features``, the served model's own code) and append it to its split's parquet file.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common import dataset, tables
from common.step import StepError
from preprocess.fit import TransformFitter
from preprocess.split import (
    SPLITS,
    TEST,
    TRAIN,
    SplitKeyError,
    assign,
    column_codes,
    key_uniforms,
    row_uniforms,
)
from tabular_model.transform import (
    Label,
    TableTransform,
    TransformError,
    as_label,
    encode_features,
    encode_target,
)


@dataclass(frozen=True)
class SplitSpec:
    val_fraction: float
    test_fraction: float
    seed: int
    key: str | None = None  # hash this column instead of the row position
    column: str | None = None  # this column names each row's split (fractions unused)

    @property
    def columns(self) -> set[str]:
        """Input columns that decide the split and so are not features."""
        return {c for c in (self.key, self.column) if c is not None}


def split_codes(batch: pa.RecordBatch, start: int, spec: SplitSpec) -> np.ndarray:
    """TRAIN/VAL/TEST per row of a batch whose first row is row ``start`` of the input."""
    try:
        if spec.column is not None:
            return column_codes(batch.column(spec.column), spec.column)
        if spec.key is None:
            uniforms = row_uniforms(start, batch.num_rows, spec.seed)
        else:
            uniforms = key_uniforms(batch.column(spec.key), spec.key)
    except SplitKeyError as exc:
        raise StepError(str(exc)) from exc
    return assign(uniforms, spec.val_fraction, spec.test_fraction)


# The distinct target values pass 1 keeps: every class of a classification target; a number
# target with more is a regression target (or a mistake), whose values need not be kept.
LABEL_CAP = 100_000


@dataclass
class Scan:
    """What pass 1 learned about the whole input (all splits)."""

    target: str
    rows: int = 0
    split_rows: list[int] = field(default_factory=lambda: [0, 0, 0])
    labels: set[Label] = field(default_factory=set)
    null_labels: int = 0
    values: dict[str, int] = field(default_factory=dict)  # non-null values per column
    infinite: set[str] = field(default_factory=set)
    labels_overflow: bool = False  # more than LABEL_CAP distinct target values: not all kept
    fractional_labels: bool = False  # a target value with a fractional part

    def add(self, batch: pa.RecordBatch, codes: np.ndarray) -> None:
        self.rows += batch.num_rows
        for code in range(len(SPLITS)):
            self.split_rows[code] += int(np.count_nonzero(codes == code))
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            self.values[name] = self.values.get(name, 0) + len(column) - column.null_count
            if pa.types.is_floating(column.type) and _has_infinite(column):
                self.infinite.add(name)
        labels = batch.column(self.target)
        self.null_labels += labels.null_count
        if _is_dict(labels):  # the distinct codes, then their values: no decoding of every row
            uniques = labels.dictionary.take(pc.unique(labels.indices.drop_null()))
        else:
            uniques = pc.unique(labels)
        if pa.types.is_floating(uniques.type):
            finite = uniques.to_numpy(zero_copy_only=False)
            finite = finite[np.isfinite(finite)]
            self.fractional_labels |= bool((finite != np.round(finite)).any())
        if not self.labels_overflow:
            self.labels.update(as_label(v) for v in uniques.to_pylist() if v is not None)
            self.labels_overflow = len(self.labels) > LABEL_CAP

    @property
    def counts(self) -> dict[str, int]:
        return dict(zip(SPLITS, self.split_rows, strict=True))


def _is_dict(array: pa.Array) -> bool:
    return pa.types.is_dictionary(array.type)


def _has_infinite(column: pa.Array) -> bool:
    """numpy on the column's own buffer (no copy without nulls; nulls read as NaN, not inf):
    several times cheaper than Arrow's min/max or is_inf kernels here."""
    return bool(np.isinf(column.to_numpy(zero_copy_only=False)).any())


def scan(
    source: tables.BatchSource, spec: SplitSpec, fitter: TransformFitter, batch_rows: int
) -> Scan:
    """Pass 1: statistics of every row, and the transform's statistics of the train rows."""
    result = Scan(fitter.target)
    for batch in source.batches(batch_rows, dictionary=True):
        codes = split_codes(batch, result.rows, spec)
        fitter.update(batch, codes == TRAIN, result.rows)
        result.add(batch, codes)
    return result


def encode_batch(transform: TableTransform, batch: pa.RecordBatch) -> pa.Table:
    """Raw rows → the encoded table (features, then the class index); once per batch, so each
    distinct category is looked up once, whatever split its rows go to."""
    frame = batch.to_pandas(split_blocks=True)  # one block per column: no consolidation copy
    try:
        features = encode_features(transform, frame)
        target = encode_target(transform, frame[transform.target])
    except TransformError as exc:
        raise StepError(str(exc)) from exc
    encoded = dataset.EncodedSplit(features.numeric, features.categorical, target)
    return dataset.encoded_table(transform, encoded)


def raw_schema(source: tables.BatchSource, spec: SplitSpec) -> pa.Schema:
    """The raw rows' schema: the input's, less a split column (it says only which split a row
    went to, which its file already says)."""
    if spec.column is None:
        return source.schema
    return source.schema.remove(source.schema.get_field_index(spec.column))


def as_raw(rows: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """Rows in the input's own types (text columns were read dictionary-encoded), with the
    columns of ``schema``."""
    return pa.Table.from_batches([rows]).select(schema.names).cast(schema)


def write_splits(
    source: tables.BatchSource,
    spec: SplitSpec,
    transform: TableTransform,
    output: str,
    batch_rows: int,
    sample_rows: int,
) -> dict[str, int]:
    """Pass 2: every split's encoded parquet, the raw test rows and the first ``sample_rows``
    raw train rows. Each file appears only if the whole pass succeeds. A batch is written by a
    background thread while the next one is encoded (Arrow's writer releases the GIL); at most
    one batch waits, so memory stays bounded."""
    counts = dict.fromkeys(SPLITS, 0)
    sample: list[pa.Table] = []
    schema = dataset.encoded_schema(transform)
    with ExitStack() as files:
        uris = [dataset.split_uri(output, s) for s in SPLITS] + [dataset.raw_uri(output, "test")]
        raw = raw_schema(source, spec)
        schemas = [schema] * len(SPLITS) + [raw]
        writers = [
            files.enter_context(tables.parquet_writer(u, s))
            for u, s in zip(uris, schemas, strict=True)
        ]
        with ThreadPoolExecutor(max_workers=1) as background:
            pending: Future[None] | None = None
            start = 0
            for batch in source.batches(batch_rows, dictionary=True):
                codes = split_codes(batch, start, spec)
                start += batch.num_rows
                encoded = encode_batch(transform, batch)
                masks = [pa.array(codes == code) for code in range(len(SPLITS))]
                parts = [encoded.filter(mask) for mask in masks]
                parts.append(as_raw(batch.filter(masks[TEST]), raw))
                for name, table in zip(SPLITS, parts, strict=False):
                    counts[name] += table.num_rows
                taken = sum(t.num_rows for t in sample)
                if taken < sample_rows:
                    train = batch.filter(masks[TRAIN]).slice(0, sample_rows - taken)
                    sample.append(as_raw(train, raw))
                if pending is not None:
                    pending.result()  # raises the writer's error here, in the main thread
                pending = background.submit(write_all, writers, parts)
            if pending is not None:
                pending.result()
        with tables.parquet_writer(dataset.raw_uri(output, "sample"), raw) as writer:
            writer.write_table(pa.concat_tables(sample) if sample else raw.empty_table())
    return counts


def write_all(writers: list[pq.ParquetWriter], parts: list[pa.Table]) -> None:
    for writer, table in zip(writers, parts, strict=True):
        writer.write_table(table)
