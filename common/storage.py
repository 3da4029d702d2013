"""Files at fsspec URIs (local path, ``file://``, ``s3://``): filesystems, storage errors named
with their URI, writes that appear whole or not at all, JSON, fingerprints. Tables are in
``common.tables``."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from common.step import StepError


def join_uri(base: str, *parts: str) -> str:
    """Join path parts onto a URI without losing its scheme (``s3://b/k`` + ``x`` → ``s3://b/k/x``)."""
    return posixpath.join(base.rstrip("/"), *parts)


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem holding ``uri`` and the path on it; a StepError naming ``uri`` for a
    scheme fsspec does not know or whose package is not installed."""
    try:
        return fsspec.core.url_to_fs(uri)  # type: ignore[no-any-return]
    except (ValueError, ImportError) as exc:
        raise StepError(f"{uri}: unsupported URI ({exc})") from exc


@contextmanager
def storage_errors(uri: str) -> Iterator[None]:
    """Turn a refused access (HTTP 403, file permissions) or missing credentials into a
    StepError naming ``uri``."""
    try:
        yield
    except PermissionError as exc:
        raise StepError(f"{uri}: access denied ({exc})") from exc
    except Exception as exc:
        # botocore is not imported here (local runs do not need it); match its error by name.
        if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
            raise StepError(f"{uri}: no usable storage credentials ({exc})") from exc
        raise


@contextmanager
def open_for_write(uri: str) -> Iterator[Any]:
    """A binary file at ``uri`` that appears only if the block ends without an exception: a
    local file is written beside its target and renamed; an object store upload is completed
    only then (otherwise aborted, so no partial object is ever visible)."""
    fs, path = filesystem(uri)
    with storage_errors(uri):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        if isinstance(fs, LocalFileSystem):
            partial = f"{path}{PARTIAL}{os.getpid()}"
            try:
                with pa.OSFile(partial, "wb") as fh:  # Arrow's own file: no Python in writes
                    yield fh
                os.replace(partial, path)
            finally:
                if os.path.exists(partial):
                    os.remove(partial)
            return
        fh = fs.open(path, "wb", autocommit=False)
        try:
            yield fh
            fh.close()
            fh.commit()
        except BaseException:
            with suppress(Exception):
                fh.close()
                fh.discard()
            raise


PARTIAL = ".partial-"  # infix of a local file still being written (see open_for_write)


def remove_partials(folder: str) -> int:
    """Delete files left half-written under ``folder`` by a process that was killed (a local
    ``open_for_write`` renames only complete files); how many were removed."""
    fs, path = filesystem(folder)
    with storage_errors(folder):
        if not fs.isdir(path):
            return 0
        partial = [f for f in fs.find(path) if PARTIAL in posixpath.basename(f)]
        for file in partial:
            fs.rm(file)
    return len(partial)


def write_json(payload: Any, uri: str) -> None:
    """Write ``payload`` as indented JSON with sorted keys (NaN refused: not valid JSON)."""
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False)
    write_bytes_atomic(text.encode("utf-8"), uri)


def read_json(uri: str) -> Any:
    """The JSON value at ``uri``; a StepError naming it when it is missing or not JSON."""
    fs, path = filesystem(uri)
    with storage_errors(uri):
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
    fs, path = filesystem(uri)
    with storage_errors(uri):
        if not fs.exists(path):
            raise StepError(f"{uri} does not exist")
        if fs.isdir(path):
            files = fs.find(path)
            return sorted(f for f in files if not posixpath.basename(f).startswith((".", "_")))
    return [path]


def fingerprint(uri: str, chunk_size: int = 1 << 20) -> str:
    """``sha256:<hex>`` of the bytes at ``uri`` (a folder: each data file's relative path and
    bytes, in sorted order). Same data, same fingerprint, wherever it is stored."""
    fs, path = filesystem(uri)
    digest = hashlib.sha256()
    with storage_errors(uri):
        for file in data_files(uri):
            digest.update(posixpath.relpath(file, path).encode() + b"\0")
            with fs.open(file, "rb") as fh:
                while chunk := fh.read(chunk_size):
                    digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def remove(uri: str) -> None:
    """Delete a file if it exists."""
    fs, path = filesystem(uri)
    with storage_errors(uri):
        if fs.exists(path):
            fs.rm(path)


def write_bytes_atomic(data: bytes, uri: str) -> None:
    """Write ``data`` at ``uri`` so that a reader sees the previous file or the whole new one,
    never a part (see ``open_for_write``)."""
    with open_for_write(uri) as fh:
        fh.write(data)


def exists(uri: str) -> bool:
    """Whether a file or folder exists at ``uri``."""
    fs, path = filesystem(uri)
    with storage_errors(uri):
        return bool(fs.exists(path))
