"""Training checkpoints in a folder at any fsspec URI (local path, ``file://``, ``s3://``).

Layout::

    <dir>/ckpt-<epoch>-<step>-<random>.pt   torch.save of tensors and plain types only
    <dir>/latest.json                        the pointer: file name, sha256, size, identity

A checkpoint is committed by replacing ``latest.json`` last, after its file is completely
written under a name of its own. A write interrupted at any point leaves the previous pointer in
place (on S3 a PUT is atomic per object; rename is not, so the pointer is the only thing that is
replaced, with ``common.storage.write_bytes_atomic``). The pointer carries the checkpoint's
sha256, so a damaged file is refused, not loaded. Loading uses ``torch.load(weights_only=True)``:
no pickle code runs. Only the last ``keep`` committed checkpoints stay; older ones and leftovers
of interrupted writes are deleted."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import posixpath
import uuid
from typing import Any

import torch

from common import storage
from common.step import StepError

log = logging.getLogger(__name__)

LATEST = "latest.json"
PREFIX = "ckpt-"
SUFFIX = ".pt"
FORMAT_VERSION = 1


class CheckpointStore:
    """The checkpoints of one training run under ``uri``. Storage failures (access denied,
    missing credentials) are StepErrors naming the file, as every other storage error is."""

    def __init__(self, uri: str, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.uri = uri.rstrip("/")
        self.keep = keep
        try:
            self.fs, self.root = storage.filesystem(self.uri)
        except StepError as exc:  # say which flag holds the URI
            raise StepError(f"--checkpoint-dir {exc}") from exc

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, name)

    def _uri(self, name: str) -> str:
        return storage.join_uri(self.uri, name)

    def pointer(self) -> dict[str, Any] | None:
        """The committed ``latest.json``, or None when nothing was committed yet."""
        uri = self._uri(LATEST)
        if not storage.exists(uri):
            return None
        pointer = storage.read_json(uri)
        if not isinstance(pointer, dict) or pointer.get("format") != FORMAT_VERSION:
            raise StepError(f"{uri}: not a checkpoint pointer of format {FORMAT_VERSION}")
        return pointer

    def load(self, pointer: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint ``pointer`` names, checked against its sha256, on the CPU."""
        name = pointer["file"]
        with storage.storage_errors(self._uri(name)):
            try:
                data = self.fs.cat_file(self._path(name))
            except FileNotFoundError as exc:
                raise StepError(f"{self.uri}/{LATEST} names {name}, which does not exist") from exc
        if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
            raise StepError(f"{self.uri}/{name} does not match the sha256 in {LATEST}")
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return state  # type: ignore[no-any-return]

    def save(self, state: dict[str, Any], tag: str, identity: str) -> str:
        """Write ``state`` under a new name, then commit it as the latest; returns its name.
        ``identity`` (the run's config hash) goes into the pointer for a cheap check on start."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        name = f"{PREFIX}{tag}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        with storage.storage_errors(self._uri(name)):
            self.fs.makedirs(self.root, exist_ok=True)
            # A name of its own: no reader looks at it until the pointer names it.
            self.fs.pipe_file(self._path(name), data)
        previous = self.pointer()
        kept = [name, *(previous or {}).get("history", [])][: self.keep]
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
        self._prune(set(kept))
        return name

    def _files(self) -> list[str]:
        with storage.storage_errors(self.uri):
            if not self.fs.exists(self.root):
                return []
            names = [posixpath.basename(p) for p in self.fs.ls(self.root, detail=False)]
        return [n for n in names if n.startswith(PREFIX) and n.endswith(SUFFIX)]

    def _prune(self, kept: set[str]) -> None:
        for name in self._files():
            if name not in kept:
                with storage.storage_errors(self._uri(name)):
                    self.fs.rm(self._path(name))

    def clear(self) -> None:
        """Delete the pointer first (so nothing half-deleted is ever resumed), then the files."""
        storage.remove(self._uri(LATEST))
        self._prune(set())


def identity_hash(identity: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able description of the run."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
