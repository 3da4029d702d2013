"""What ``--reference`` names: a data URI, or ``models:/NAME@ALIAS``, the raw data the model
version behind that alias was trained on. The second is followed from the registry: the version's
training run → its ``data_path`` param (the preprocess output it trained on) → that output's
manifest → the raw ``source`` and its sha256 ``fingerprint``.

A data URI comes from whoever triggers a run, so it is read only from an allowed location:
under an ``--allowed-reference-root``, or without one beside ``--source`` (any local path for a
local source, else the source's own bucket). Anything else (http://, chained ``a::b`` URLs,
``..`` segments, other stores) is refused before anything is read.

Drift against a model's training data only means something if that data is still what the model
saw: a source overwritten in place since (one path reused every day) holds other rows, so it is
not compared with, and a warning says why. No version at the alias yet (the first run) is not a
problem: there is nothing to compare with.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from common import dataset, storage
from common.step import StepError, UsageError
from validator.checks import Anomaly

log = logging.getLogger(__name__)

MODEL_REFERENCE = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[A-Za-z0-9_-]+)$")
NO_REFERENCE = "none"  # --reference none: no drift comparison (a DAG param can say so)
# Object stores whose URIs name a bucket; other schemes (http, ftp, memory, data...) are refused.
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "abfs", "abfss", "az")
URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
SCHEME_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
SHOWN_CHARS = 200  # of a refused --reference quoted in the message
NOT_STORAGE = "not a storage location (a local path, file:// or object-store URI); not read"


@dataclass(frozen=True)
class Location:
    """Where data lives: its store (``file`` for local paths, else ``scheme://bucket``) and
    its path's segments (local paths resolved: no ``..``, no symbolic links)."""

    store: str
    parts: tuple[str, ...]

    def within(self, root: Location) -> bool:
        return self.store == root.store and self.parts[: len(root.parts)] == root.parts


def location(uri: str) -> Location | None:
    """The location of a local path, ``file://`` URI or object-store URI; None for anything
    fsspec would read otherwise (another scheme, a chained ``a::b`` URL, a query or fragment,
    an empty or relative segment in an object key)."""
    if any(mark in uri for mark in ("::", "?", "#")):
        return None
    match = URL.match(uri)
    if match is None:
        if SCHEME_PREFIX.match(uri) or "://" in uri:  # data:..., or a URL inside a path
            return None
        return Location("file", _local_parts(uri))
    scheme, rest = match["scheme"].lower(), match["rest"]
    if scheme == "file":
        return Location("file", _local_parts(rest)) if rest.startswith("/") else None
    bucket, _, key = rest.partition("/")
    parts = tuple(key.removesuffix("/").split("/")) if key else ()
    if scheme not in OBJECT_STORES or not bucket or any(p in ("", ".", "..") for p in parts):
        return None
    return Location(f"{scheme}://{bucket}", parts)


def _local_parts(path: str) -> tuple[str, ...]:
    return tuple(part for part in os.path.realpath(path).split(os.sep) if part)


def reference_roots(source: str, roots: Sequence[str]) -> tuple[list[Location], str]:
    """Where a data reference may lie, and those places in words: the given roots (a root that
    is not a storage location is a UsageError), else the location of ``source``."""
    if roots:
        found = []
        for root in roots:
            where = location(root)
            if where is None:
                raise UsageError(
                    f"--allowed-reference-root {root!r}: not a storage location (a local path, "
                    "file:// or an object-store URI such as s3://bucket/prefix)"
                )
            found.append(where)
        return found, f"{', '.join(roots)} (--allowed-reference-root)"
    own = location(source)
    if own is None:
        return [], "--allowed-reference-root (--source is not a storage location)"
    if own.store == "file":
        return [Location("file", ())], "a local path, as --source is local"
    return [Location(own.store, ())], f"{own.store}, the bucket of --source"


def check_reference_location(reference: str | None, source: str, roots: Sequence[str]) -> None:
    """Refuse a ``--reference`` that is not ``models:/NAME@ALIAS``, ``none`` or data under an
    allowed root (see ``reference_roots``), before anything is read: a UsageError saying what is
    allowed (a bad root is refused whatever the reference)."""
    allowed, where = reference_roots(source, roots)
    if not reference or reference == NO_REFERENCE:
        return
    if reference.startswith("models:/"):
        if MODEL_REFERENCE.match(reference) is None:
            raise UsageError(f"--reference {reference!r}: write a model as models:/NAME@ALIAS")
        return
    found = location(reference)
    if found is None or not any(found.within(root) for root in allowed):
        shown = reference if len(reference) <= SHOWN_CHARS else reference[:SHOWN_CHARS] + "…"
        raise UsageError(
            f"--reference {shown!r} is not allowed: give models:/NAME@ALIAS, none, or data "
            f"under {where}"
        )


@dataclass(frozen=True)
class ResolvedReference:
    """The data to compare with (None: no comparison this run), what it is, and a warning when
    the reference named could not be used."""

    uri: str | None
    note: str | None = None
    anomaly: Anomaly | None = None


def resolve_reference(reference: str | None) -> ResolvedReference:
    """``--reference`` (already checked by ``check_reference_location``) as data to read.
    Registry and manifest problems that make the reference unusable are warnings; a registry
    that cannot be reached is a StepError (a retry may help)."""
    if not reference or reference == NO_REFERENCE:
        return ResolvedReference(None)
    match = MODEL_REFERENCE.match(reference)
    if match is None:
        return ResolvedReference(reference)
    return _training_data(reference, match["name"], match["alias"])


def _training_data(reference: str, name: str, alias: str) -> ResolvedReference:
    from common.tracking import alias_version, configure_mlflow, reaching_mlflow

    with reaching_mlflow():
        version = alias_version(name, alias)
        if version is None:
            note = f"no version of {name!r} has alias {alias!r} yet; drift not measured"
            log.info("--reference %s: %s", reference, note)
            return ResolvedReference(None, note)
        run = configure_mlflow().MlflowClient().get_run(version.run_id)
    model = f"{reference} (version {version.version}, run {version.run_id})"
    data_path = run.data.params.get("data_path")
    if not data_path:
        return _unusable(reference, f"{model} records no data_path param")
    if location(data_path) is None:
        return _unusable(reference, f"{model} records data_path {data_path!r}, {NOT_STORAGE}")
    try:
        manifest = dataset.read_manifest(data_path)
        source, recorded = manifest["source"], manifest["fingerprint"]
        if location(source) is None:
            return _unusable(reference, f"{model} was trained on {source!r}, {NOT_STORAGE}")
        current = storage.fingerprint(source) if storage.exists(source) else None
    except (StepError, KeyError) as exc:
        return _unusable(reference, f"the training data of {model} cannot be read: {exc}")
    if current != recorded:
        now = "is gone" if current is None else f"now holds other data (sha256 {current[:12]}…)"
        return _unusable(
            reference,
            f"{model} was trained on {source} (sha256 {recorded[:12]}…), which {now}; keep "
            "dated inputs to compare with a model's training data",
        )
    return ResolvedReference(source, f"training data of {model}")


def _unusable(reference: str, why: str) -> ResolvedReference:
    text = f"--reference {reference}: {why}; drift not measured"
    anomaly = Anomaly(None, "reference_unusable", "warning", reference, None, text)
    return ResolvedReference(None, text, anomaly)
