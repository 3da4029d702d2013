"""Reading and writing tables and JSON at fsspec URIs (local path, ``file://``, ``s3://``)."""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import uuid
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contract.step import StepError

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
PARQUET_MAGIC = b"PAR1"


def join_uri(base: str, *parts: str) -> str:
    """Join path parts onto a URI without losing its scheme (``s3://b/k`` + ``x`` → ``s3://b/k/x``)."""
    return posixpath.join(base.rstrip("/"), *parts)


def _filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        return fsspec.core.url_to_fs(uri)  # type: ignore[no-any-return]
    except (ValueError, ImportError) as exc:
        raise StepError(f"{uri}: unsupported URI ({exc})") from exc


def read_table(uri: str) -> pd.DataFrame:
    """Read a parquet file, a folder (or partitioned dataset) of parquet files, or a CSV file."""
    fs, path = _filesystem(uri)
    try:
        if not fs.exists(path):
            raise StepError(f"{uri} does not exist")
        if fs.isdir(path):
            return _read_parquet_folder(uri, fs, path)
        if fs.size(path) == 0:
            raise StepError(f"{uri} is empty (0 bytes)")
        with fs.open(path, "rb") as fh:
            head = fh.read(4)
        if path.lower().endswith(CSV_SUFFIXES) and head != PARQUET_MAGIC:
            return _read_csv(uri, fs, path)
        return _read_parquet_file(uri, fs, path)
    except PermissionError as exc:
        raise StepError(f"{uri}: access denied ({exc})") from exc


def _read_parquet_folder(uri: str, fs: fsspec.AbstractFileSystem, path: str) -> pd.DataFrame:
    files = [f for f in fs.find(path) if f.endswith(".parquet")]
    if not files:
        raise StepError(f"{uri} is a folder with no .parquet files")
    try:
        return pq.read_table(path, filesystem=fs).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise StepError(f"{uri} is not a readable parquet dataset: {exc}") from exc


def _read_parquet_file(uri: str, fs: fsspec.AbstractFileSystem, path: str) -> pd.DataFrame:
    try:
        with fs.open(path, "rb") as fh:
            return pq.read_table(fh).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise StepError(f"{uri} is not a readable parquet file: {exc}") from exc


def _read_csv(uri: str, fs: fsspec.AbstractFileSystem, path: str) -> pd.DataFrame:
    sep = "\t" if path.lower().endswith(".tsv") else ","
    try:
        with fs.open(path, "rb", compression="infer") as fh:
            frame = pd.read_csv(fh, sep=sep)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise StepError(f"{uri} is not a readable CSV file: {exc}") from exc
    if frame.shape[1] == 1 and any(d in str(frame.columns[0]) for d in ";|\t,"):
        raise StepError(
            f"{uri}: CSV parsed into a single column {str(frame.columns[0])[:80]!r}; "
            f"the file seems to use a delimiter other than {sep!r}"
        )
    return frame


def write_parquet(frame: pd.DataFrame, uri: str) -> None:
    fs, path = _filesystem(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    with fs.open(path, "wb") as fh:
        fh.write(buffer.getvalue())


def write_json(payload: Any, uri: str) -> None:
    fs, path = _filesystem(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, allow_nan=False)


def read_json(uri: str) -> Any:
    fs, path = _filesystem(uri)
    if not fs.exists(path):
        raise StepError(f"{uri} does not exist")
    try:
        with fs.open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StepError(f"{uri} is not valid JSON: {exc}") from exc


def data_files(uri: str) -> list[str]:
    """The files holding the data at ``uri``: the file itself, or every file under a folder (a
    partitioned dataset), sorted, as paths of its filesystem."""
    fs, path = _filesystem(uri)
    if not fs.exists(path):
        raise StepError(f"{uri} does not exist")
    if fs.isdir(path):
        return sorted(f for f in fs.find(path) if not posixpath.basename(f).startswith((".", "_")))
    return [path]


def fingerprint(uri: str, chunk_size: int = 1 << 20) -> str:
    """``sha256:<hex>`` of the bytes at ``uri`` (a folder: each data file's relative path and
    bytes, in sorted order). Same data, same fingerprint, wherever it is stored."""
    fs, path = _filesystem(uri)
    digest = hashlib.sha256()
    for file in data_files(uri):
        digest.update(posixpath.relpath(file, path).encode() + b"\0")
        with fs.open(file, "rb") as fh:
            while chunk := fh.read(chunk_size):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def remove(uri: str) -> None:
    """Delete a file if it exists."""
    fs, path = _filesystem(uri)
    if fs.exists(path):
        fs.rm(path)


def write_bytes_atomic(data: bytes, uri: str) -> None:
    """Write ``data`` at ``uri`` so that a reader sees the previous file or the whole new one,
    never a part: the bytes go to a hidden sibling in one call, which is then renamed (local) or
    copied in one request (object stores) over the target."""
    fs, path = _filesystem(uri)
    parent = posixpath.dirname(path)
    fs.makedirs(parent, exist_ok=True)
    temp = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        fs.pipe_file(temp, data)
        fs.mv(temp, path)
    finally:
        if fs.exists(temp):
            fs.rm(temp)


def exists(uri: str) -> bool:
    """Whether a file or folder exists at ``uri``."""
    fs, path = _filesystem(uri)
    return bool(fs.exists(path))
