"""The predictions file: parquet or CSV written table by table into a file that appears at its
URI only when complete (``common.storage.open_for_write``), and its manifest, written after it.
Nothing in the file depends on when it was written: the same rows give the same bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from common.step import StepError
from common.storage import filesystem, open_for_write, remove, storage_errors, write_json
from common.tables import parquet_writer

WriteTable = Callable[[pa.Table], None]


@contextmanager
def csv_writer(uri: str, schema: pa.Schema) -> Iterator[pacsv.CSVWriter]:
    """A CSV file (header, then rows) written table by table, whole or not at all."""
    with open_for_write(uri) as fh:
        writer = pacsv.CSVWriter(fh, schema)
        try:
            yield writer
        finally:  # also on failure: an unclosed writer would write to a closed file later
            writer.close()


@contextmanager
def table_writer(uri: str, kind: str, schema: pa.Schema) -> Iterator[WriteTable]:
    """``write(table)`` into a parquet or CSV file at ``uri``; every table must have
    ``schema`` (the first one's), others are cast to it or refused with a StepError."""
    opened = parquet_writer(uri, schema) if kind == "parquet" else csv_writer(uri, schema)
    with opened as writer:

        def write(table: pa.Table) -> None:
            if not table.schema.equals(schema):
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise StepError(
                        f"{uri}: a batch's predictions have types {table.schema.types} unlike "
                        f"the first batch's {schema.types}: {exc}"
                    ) from exc
            writer.write_table(table)

        yield write


def file_sha256(uri: str, chunk_size: int = 1 << 20) -> str:
    """``sha256:<hex>`` of the file's bytes (what ``sha256sum`` prints for it)."""
    fs, path = filesystem(uri)
    digest = hashlib.sha256()
    with storage_errors(uri), fs.open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def write_manifest(manifest: dict[str, Any], manifest_uri: str, output_uri: str) -> None:
    """Write the manifest; when that fails, remove the output too, so that an output is never
    left without the manifest that describes it (or with an earlier run's)."""
    try:
        write_json(manifest, manifest_uri)
    except BaseException:
        for uri in (output_uri, manifest_uri):
            with suppress(Exception):  # the first failure is the one to report
                remove(uri)
        raise
