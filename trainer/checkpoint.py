"""Training checkpoints in a folder at any fsspec URI (local path, ``file://``, ``s3://``).

Layout::

    <dir>/ckpt-<epoch>-<step>-<random>.pt   torch.save of tensors and plain types only
    <dir>/latest.json                        the pointer: file name, sha256, size, identity,
                                             the names of the checkpoints kept (history)

A checkpoint is committed by replacing ``latest.json`` last, after its file is completely
written under a name of its own. A write interrupted at any point leaves the previous pointer in
place (on S3 a PUT is atomic per object; rename is not, so the pointer is the only thing that is
replaced, with ``common.storage.write_bytes_atomic``). The pointer carries the checkpoint's
sha256, so a damaged file is refused, not loaded. Loading uses ``torch.load(weights_only=True)``:
no pickle code runs.

The pointer is not trusted: before anything is read, every key is checked (a StepError names
``latest.json`` and the key), the file must be a plain checkpoint file name in this folder (no
separators, no ``..``), and its size, recorded and real, must agree and stay under
MAX_CHECKPOINT_BYTES; the file is read no further than that size.

Only the last ``keep`` committed checkpoints stay. The store deletes only what its pointer
recorded and a write of its own that failed; every other file in the folder (someone's
``ckpt-best.pt``, the leftover of a write cut off by a killed process) is left where it is and
named once in the log."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import posixpath
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import torch

from common import storage
from common.redaction import redact_uri
from common.step import StepError

log = logging.getLogger(__name__)

LATEST = "latest.json"
PREFIX = "ckpt-"
SUFFIX = ".pt"
FORMAT_VERSION = 1
# The store's own file names: a plain name, no separator, no dot but the suffix's.
NAME = re.compile(rf"{PREFIX}[A-Za-z0-9_-]+{re.escape(SUFFIX)}")
SHA256 = re.compile(r"[0-9a-f]{64}")
# Far above the model, optimizer state and best weights of any tabular network the trainer
# builds; a pointer claiming more is damaged, and following it would exhaust memory.
MAX_CHECKPOINT_BYTES = 16 << 30


def is_checkpoint_name(value: object) -> bool:
    return isinstance(value, str) and NAME.fullmatch(value) is not None


# Each key of a pointer: the check its value must pass, and what the check expects.
POINTER_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "format": (lambda v: type(v) is int and v == FORMAT_VERSION, str(FORMAT_VERSION)),
    "file": (
        is_checkpoint_name,
        "a checkpoint file name in this folder (ckpt-*.pt of letters, digits, - and _; no path)",
    ),
    "sha256": (lambda v: isinstance(v, str) and bool(SHA256.fullmatch(v)), "64 hex digits"),
    "bytes": (
        lambda v: type(v) is int and 0 < v <= MAX_CHECKPOINT_BYTES,
        f"a size from 1 to {MAX_CHECKPOINT_BYTES} bytes",
    ),
    "identity": (lambda v: isinstance(v, str), "a string"),
    "history": (
        lambda v: isinstance(v, list) and all(is_checkpoint_name(n) for n in v),
        "a list of checkpoint file names in this folder (no paths)",
    ),
}


def check_pointer(pointer: Any, where: str) -> dict[str, Any]:
    """``pointer`` (the parsed ``latest.json`` at ``where``) when the store can follow it; a
    StepError naming ``where`` and the first key that is missing or wrong otherwise."""
    if not isinstance(pointer, dict):
        raise StepError(f"{where}: not a checkpoint pointer of format {FORMAT_VERSION}")
    for key, (valid, expected) in POINTER_KEYS.items():
        if key not in pointer:
            raise StepError(f"{where}: '{key}' is missing")
        if not valid(pointer[key]):
            raise StepError(f"{where}: '{key}' must be {expected}, not {pointer[key]!r:.80}")
    return pointer


class CheckpointStore:
    """The checkpoints of one training run under ``uri``. Storage failures (access denied,
    missing credentials) are StepErrors naming the file, as every other storage error is;
    messages show URIs with their credentials masked."""

    def __init__(self, uri: str, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.uri = uri.rstrip("/")
        self.shown = redact_uri(self.uri)
        self.keep = keep
        self.reported = False  # whether the files it did not write were named in the log
        try:
            self.fs, self.root = storage.filesystem(self.uri)
        except StepError as exc:  # say which flag holds the URI
            raise StepError(f"--checkpoint-dir {redact_uri(str(exc))}") from exc

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, name)

    def _uri(self, name: str) -> str:
        return storage.join_uri(self.uri, name)

    def _shown(self, name: str) -> str:
        return storage.join_uri(self.shown, name)

    def pointer(self) -> dict[str, Any] | None:
        """The committed ``latest.json``, checked (``check_pointer``), or None when nothing
        was committed yet."""
        uri = self._uri(LATEST)
        if not storage.exists(uri):
            return None
        return check_pointer(storage.read_json(uri), self._shown(LATEST))

    def load(self, pointer: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint ``pointer`` names, checked against its size and sha256, on the CPU."""
        pointer = check_pointer(pointer, self._shown(LATEST))
        name = pointer["file"]
        data = self._read(name, pointer["bytes"])
        if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
            raise StepError(f"{self._shown(name)} does not match the sha256 in {LATEST}")
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return state  # type: ignore[no-any-return]

    def _read(self, name: str, size: int) -> bytes:
        """The bytes of checkpoint ``name``, which the pointer says are ``size``: refused
        unless it is a plain file of that size, and never read past it (a file that grows
        after the check included)."""
        shown = self._shown(name)
        with storage.storage_errors(shown):
            try:
                info = self.fs.info(self._path(name))
            except FileNotFoundError as exc:
                where = self._shown(LATEST)
                raise StepError(f"{where} names {name}, which does not exist") from exc
            if info.get("islink") or info.get("type") != "file":
                raise StepError(f"{shown} is not a plain file (a link or a device); not read")
            if info.get("size") != size:
                raise StepError(f"{shown} is {info.get('size')} bytes, {LATEST} says {size}")
            return bytes(self.fs.cat_file(self._path(name), start=0, end=size))

    def save(self, state: dict[str, Any], tag: str, identity: str) -> str:
        """Write ``state`` under a new name, then commit it as the latest; returns its name.
        ``identity`` (the run's config hash) goes into the pointer for a cheap check on start;
        the checkpoints the new pointer no longer keeps are deleted."""
        name = f"{PREFIX}{tag}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        if not is_checkpoint_name(name):
            raise ValueError(f"tag {tag!r} makes {name!r}, not a name matching {NAME.pattern}")
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        self._write(name, data)
        previous = self.pointer()
        history = [name, *(previous or {}).get("history", [])]
        kept = history[: self.keep]
        pointer = {
            "format": FORMAT_VERSION,
            "file": name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "identity": identity,
            "history": kept,
        }
        # Readers see the old pointer or the new one whole, never a part of it.
        text = json.dumps(pointer, indent=2, sort_keys=True)
        storage.write_bytes_atomic(text.encode(), self._uri(LATEST))
        self._delete(n for n in history[self.keep :] if n not in kept)
        self._report_others(set(kept))
        return name

    def _write(self, name: str, data: bytes) -> None:
        """Write checkpoint ``name`` (no reader looks at it until a pointer names it); a write
        that fails is removed, not left behind."""
        path = self._path(name)
        with storage.storage_errors(self._shown(name)):
            self.fs.makedirs(self.root, exist_ok=True)
            try:
                self.fs.pipe_file(path, data)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.fs.rm(path)
                raise

    def _delete(self, names: Iterable[str]) -> None:
        """Delete checkpoints a pointer of this store recorded (names checked); one already
        gone is no error."""
        for name in names:
            with storage.storage_errors(self._shown(name)), contextlib.suppress(FileNotFoundError):
                self.fs.rm(self._path(name))

    def _report_others(self, ours: set[str]) -> None:
        """Name in the log, once per store, the files in the folder that it did not write
        (besides ``ours`` and the pointer); they are left as they are."""
        if self.reported:
            return
        self.reported = True
        with storage.storage_errors(self.shown):
            listed = self.fs.ls(self.root, detail=False) if self.fs.exists(self.root) else []
        others = sorted({posixpath.basename(p) for p in listed} - ours - {LATEST})
        if others:
            log.warning(
                "%s holds %d files this trainer did not write; they are left as they are: %s",
                self.shown,
                len(others),
                ", ".join(others),
            )

    def clear(self) -> None:
        """Delete the pointer first (so nothing half-deleted is ever resumed), then the
        checkpoints it recorded; every other file stays."""
        pointer = self.pointer()
        storage.remove(self._uri(LATEST))
        if pointer is not None:
            self._delete(dict.fromkeys([pointer["file"], *pointer["history"]]))
        self._report_others(set())


def identity_hash(identity: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able description of the run."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
