"""Registry operations of a deploy: one version per run, decision tags on the version, and the
``champion`` alias moved with a compare-and-set.

MLflow has no compare-and-set for aliases, so every move of ``champion`` and
``previous_champion`` (a deploy or a rollback) happens under a lock: the registered model
``<name>.alias-lock``, which the registry lets only one caller create (a second create of the
same name is refused). Holding it, a deploy reads ``champion``, checks it against the version
it expects, writes ``previous_champion`` then ``champion``, and reads ``champion`` back (which
catches a writer that ignores the lock, such as a person in the MLflow UI). Another deploy or
rollback of the model waits up to ``LOCK_WAIT_S`` for the lock; a lock older than
``LOCK_STALE_S`` was left by one that was killed while holding it, and is broken."""

from __future__ import annotations

import contextlib
import io
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from common.step import StepError
from common.tracking import (
    CHAMPION,
    PREVIOUS_CHAMPION,
    alias_version,
    configure_mlflow,
    is_not_found,
    shown_tracking_uri,
)
from tabular_model.integrity import ModelIntegrityError, version_tags

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".alias-lock"
LOCK_TAG = "lock.holder"  # a token of the process holding it
# A move takes a handful of requests; waiting longer means the holder is in trouble.
LOCK_WAIT_S = 60.0
# Older than this, its holder is gone (generous: pod and server clocks may differ a little).
LOCK_STALE_S = 600.0
LOCK_POLL_S = 0.25


class ChampionMovedError(StepError):
    """``champion`` is not the version this deploy expected to replace."""


@dataclass(frozen=True)
class Expected:
    """The champion version a deploy may replace (None: no champion); where that expectation
    comes from and what to do when champion is another version, for the error message."""

    version: int | None
    basis: str
    advice: str = "evaluate the candidate again against the new champion"


def integrity_tags(run_id: str, model_uri: str) -> dict[str, str]:
    """The version tags that record the sha256 of the model's files, copied from the record
    its run kept when the model was logged (a StepError when it kept none)."""
    try:
        return version_tags(model_uri.removeprefix("models:/"), run_id)
    except ModelIntegrityError as exc:
        raise StepError(f"--run-id {run_id}: {model_uri}: {exc}") from exc


def register_once(model_name: str, run_id: str, model_uri: str) -> tuple[int, bool]:
    """The version of ``model_name`` holding this run's model (``model_uri``), registering it
    if none does; the flag says whether it was registered now. Either way the version carries
    the integrity tags of the run's record (``integrity_tags``), which loaders check."""
    mlflow = configure_mlflow()
    client = mlflow.MlflowClient()
    tags = integrity_tags(run_id, model_uri)
    # Filter by run id only: a model name may hold quotes that the filter grammar cannot escape.
    existing = [
        v for v in client.search_model_versions(f"run_id = '{run_id}'") if v.name == model_name
    ]
    if existing:
        version = min(int(v.version) for v in existing)
        log.info("run %s is already %s v%d", run_id, model_name, version)
        tag_version(model_name, version, tags)
        return version, False
    # register_model prints its progress on stderr, where a failing step's reason goes.
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        registered = mlflow.register_model(model_uri, model_name, tags=tags)
    for line in printed.getvalue().splitlines():
        log.info("%s", line)
    return int(registered.version), True


def alias_number(model_name: str, alias: str) -> int | None:
    found = alias_version(model_name, alias)
    return None if found is None else int(found.version)


def describe(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def check_expected(model_name: str, current: int | None, expected: Expected) -> None:
    """ChampionMovedError naming both versions unless ``current`` is the expected one."""
    if current != expected.version:
        raise ChampionMovedError(
            f"{model_name} at {shown_tracking_uri()}: champion is {describe(current)}, expected "
            f"{describe(expected.version)} ({expected.basis}); another deploy or rollback "
            f"moved it since: {expected.advice}"
        )


def lock_name(model_name: str) -> str:
    """The registered model that is the lock on ``model_name``'s aliases."""
    return model_name + LOCK_SUFFIX


@contextlib.contextmanager
def alias_lock(model_name: str) -> Iterator[None]:
    """Hold the lock on ``model_name``'s aliases while the block runs (see the module's
    docstring); a StepError naming the lock when another holder keeps it too long."""
    client = configure_mlflow().MlflowClient()
    name = lock_name(model_name)
    take_lock(client, name, model_name)
    try:
        yield
    finally:
        drop_lock(client, name)


def take_lock(client: Any, name: str, model_name: str) -> None:
    """Create the registered model ``name``: whoever creates it holds the lock. Wait while
    another holds it; break a stale one."""
    token = uuid.uuid4().hex
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            note = f"Held while a deploy or rollback moves the aliases of {model_name}."
            client.create_registered_model(name, tags={LOCK_TAG: token}, description=note)
            return
        except Exception as exc:
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
        holder = lock_holder(client, name)
        if holder is None:
            continue  # released between our create and our look
        if holder.tags.get(LOCK_TAG) == token:
            return  # our create went through; the client retried it after a lost answer
        age = time.time() - holder.creation_timestamp / 1000
        if age >= LOCK_STALE_S:
            log.warning("breaking %s, held for %.0f s by a deploy that is gone", name, age)
            drop_lock(client, name)
        elif time.monotonic() > deadline:
            raise StepError(
                f"another deploy or rollback of {model_name} has held the lock {name} at "
                f"{shown_tracking_uri()} for {age:.0f} s; if none is running, delete that "
                "registered model"
            )
        else:
            time.sleep(LOCK_POLL_S)


def lock_holder(client: Any, name: str) -> Any:
    """The lock's registered model, or None when nobody holds it."""
    try:
        return client.get_registered_model(name)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def drop_lock(client: Any, name: str) -> None:
    try:
        client.delete_registered_model(name)
    except Exception as exc:
        if not is_not_found(exc):
            raise


@dataclass(frozen=True)
class Move:
    previous: int | None  # previous_champion afterwards
    moved: bool  # False: the version already was champion


def move_champion(model_name: str, version: int, expected: Expected) -> Move:
    """Point ``champion`` at ``version`` if it still is the ``expected`` version, under the
    alias lock; the old champion becomes ``previous_champion``. Already champion: no change."""
    client = configure_mlflow().MlflowClient()
    with alias_lock(model_name):
        current = alias_number(model_name, CHAMPION)
        if current == version:
            log.info("%s v%d is already champion", model_name, version)
            return Move(alias_number(model_name, PREVIOUS_CHAMPION), moved=False)
        check_expected(model_name, current, expected)
        if current is not None:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(current))
        client.set_registered_model_alias(model_name, CHAMPION, str(version))
        after = alias_number(model_name, CHAMPION)
    if after != version:
        raise ChampionMovedError(
            f"{model_name} at {shown_tracking_uri()}: champion was moved to {describe(after)} "
            f"outside a deploy while v{version} was being promoted; check the registry"
        )
    return Move(current, moved=True)


def check_champion(model_name: str, expected: Expected, run_id: str) -> None:
    """Fail early, before anything is registered, when ``champion`` is no longer the expected
    version (unless it already is this run's version: a rerun of a finished deploy)."""
    current = alias_version(model_name, CHAMPION)
    if current is not None and current.run_id == run_id:
        return
    check_expected(model_name, None if current is None else int(current.version), expected)


def tag_version(model_name: str, version: int, tags: Mapping[str, str]) -> None:
    client = configure_mlflow().MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, str(version), key, value)


@dataclass(frozen=True)
class Rollback:
    version: int  # champion afterwards
    previous: int  # previous_champion afterwards
    run_id: str | None


def rollback_target(model_name: str) -> tuple[int, int]:
    """(previous_champion, champion): the versions a rollback swaps."""
    previous = alias_number(model_name, PREVIOUS_CHAMPION)
    current = alias_number(model_name, CHAMPION)
    if previous is None or current is None:
        raise StepError(
            f"{model_name} at {shown_tracking_uri()} has no {PREVIOUS_CHAMPION} to roll back to"
        )
    return previous, current


def swap_champion(model_name: str, target: int, current: int) -> Rollback:
    """Make ``target`` champion and ``current`` previous_champion, under the alias lock
    (champion must still be ``current``)."""
    client = configure_mlflow().MlflowClient()
    with alias_lock(model_name):
        expected = Expected(
            current, "the champion when the rollback started", "check the registry first"
        )
        check_expected(model_name, alias_number(model_name, CHAMPION), expected)
        client.set_registered_model_alias(model_name, CHAMPION, str(target))
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(current))
    run_id = client.get_model_version(model_name, str(target)).run_id
    return Rollback(target, current, run_id)
