"""Registry operations of a deploy: one version per run, decision tags on the version, and the
``champion`` alias moved with a compare-and-set.

MLflow has no atomic compare-and-set for aliases. ``move_champion`` reads ``champion``, checks it
against the version the evaluation compared with, reads it again right before writing, writes
``previous_champion`` then ``champion``, and reads ``champion`` back. What remains is the short
window between that last read and the write of ``champion`` (two REST calls, milliseconds): a
deploy landing inside it is overwritten, and the verification read only catches a writer that
lands after ours. The DAG runs one deploy per model at a time, which closes the window in
practice; two people deploying the same model by hand in the same instant can still race."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from common.step import StepError
from common.tracking import (
    CHAMPION,
    PREVIOUS_CHAMPION,
    alias_version,
    configure_mlflow,
    tracking_uri,
)

log = logging.getLogger(__name__)


class ChampionMovedError(StepError):
    """``champion`` is not the version the evaluation compared against."""


def register_once(model_name: str, run_id: str, model_uri: str) -> tuple[int, bool]:
    """The version of ``model_name`` holding this run's model (``model_uri``), registering it
    if none does; the flag says whether it was registered now."""
    mlflow = configure_mlflow()
    client = mlflow.MlflowClient()
    # Filter by run id only: a model name may hold quotes that the filter grammar cannot escape.
    existing = [
        v for v in client.search_model_versions(f"run_id = '{run_id}'") if v.name == model_name
    ]
    if existing:
        version = min(int(v.version) for v in existing)
        log.info("run %s is already %s v%d", run_id, model_name, version)
        return version, False
    # register_model prints its progress on stderr, where a failing step's reason goes.
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        registered = mlflow.register_model(model_uri, model_name)
    for line in printed.getvalue().splitlines():
        log.info("%s", line)
    return int(registered.version), True


def alias_number(model_name: str, alias: str) -> int | None:
    found = alias_version(model_name, alias)
    return None if found is None else int(found.version)


def describe(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def check_expected(model_name: str, current: int | None, expected: int | None) -> None:
    if current != expected:
        raise ChampionMovedError(
            f"{model_name} at {tracking_uri()}: champion is {describe(current)}, but the "
            f"evaluation compared against {describe(expected)} (--expected-champion-version); "
            "it changed since; evaluate the candidate again"
        )


@dataclass(frozen=True)
class Move:
    previous: int | None  # previous_champion afterwards
    moved: bool  # False: the version already was champion


def move_champion(model_name: str, version: int, expected: int | None, check: bool = True) -> Move:
    """Point ``champion`` at ``version`` if it still is ``expected`` (no check when ``check``
    is False); the old champion becomes ``previous_champion``. Already champion: no change."""
    client = configure_mlflow().MlflowClient()
    current = alias_number(model_name, CHAMPION)
    if current == version:
        log.info("%s v%d is already champion", model_name, version)
        return Move(alias_number(model_name, PREVIOUS_CHAMPION), moved=False)
    if check:
        check_expected(model_name, current, expected)
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(current))
    client.set_registered_model_alias(model_name, CHAMPION, str(version))
    after = alias_number(model_name, CHAMPION)
    if after != version:
        raise ChampionMovedError(
            f"{model_name} at {tracking_uri()}: another deploy moved champion to "
            f"{describe(after)} while v{version} was being promoted; check the registry"
        )
    return Move(current, moved=True)


def check_champion(model_name: str, expected: int | None, run_id: str) -> None:
    """Fail early, before anything is registered, when ``champion`` is no longer ``expected``
    (unless it already is this run's version: a rerun of a finished deploy)."""
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
            f"{model_name} at {tracking_uri()} has no {PREVIOUS_CHAMPION} to roll back to"
        )
    return previous, current


def swap_champion(model_name: str, target: int, current: int) -> Rollback:
    """Make ``target`` champion and ``current`` previous_champion (champion must still be
    ``current``)."""
    check_expected(model_name, alias_number(model_name, CHAMPION), current)
    client = configure_mlflow().MlflowClient()
    client.set_registered_model_alias(model_name, CHAMPION, str(target))
    client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(current))
    run_id = client.get_model_version(model_name, str(target)).run_id
    return Rollback(target, current, run_id)
