"""The registered model a scoring run uses: the alias read once (so the version scored and the
version named in the manifest are the same one, even when the alias moves meanwhile), then that
version downloaded, checked against its integrity record and loaded."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from common.step import StepError
from common.tracking import (
    configure_mlflow,
    first_line,
    is_not_found,
    is_unreachable,
    reaching_mlflow,
    shown_tracking_uri,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """The registry version a model URI named when it was read."""

    uri: str  # as given: models:/NAME@ALIAS or models:/NAME/VERSION
    name: str
    version: int
    run_id: str

    @property
    def pinned_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def split_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, alias, version) of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        return name, alias, None
    name, _, version = rest.rpartition("/")
    return name, None, version


def resolve_model(uri: str) -> ResolvedModel:
    """The version ``uri`` names now; a StepError naming the URI and the tracking server when
    the model, the alias or the version does not exist."""
    name, alias, version = split_uri(uri)
    client = configure_mlflow().MlflowClient()
    with reaching_mlflow():
        try:
            if alias is not None:
                found = client.get_model_version_by_alias(name, alias)
            else:
                found = client.get_model_version(name, version)
        except Exception as exc:
            if is_unreachable(exc):
                raise
            if is_not_found(exc) or "alias" in str(exc).lower():
                what = f"alias {alias!r}" if alias is not None else f"version {version}"
                raise StepError(
                    f"--model {uri}: registered model {name!r} has no {what} at "
                    f"{shown_tracking_uri()} ({first_line(exc)})"
                ) from exc
            raise
    return ResolvedModel(uri, name, int(found.version), str(found.run_id))


def load_model(model: ResolvedModel) -> Any:
    """The pyfunc model of ``model``'s version, loaded from a local copy whose every file
    matched the version's integrity record (nothing of it runs before that check); a StepError
    when it fails the check or does not load."""
    from tabular_model.integrity import ModelIntegrityError, load_verified_model

    where = f"--model {model.uri} (version {model.version})"
    with reaching_mlflow():
        try:
            return load_verified_model(model.pinned_uri)
        except ModelIntegrityError as exc:
            raise StepError(f"{where} failed its integrity check: {exc}") from exc
        except Exception as exc:
            if is_unreachable(exc):
                raise
            raise StepError(f"{where} does not load: {first_line(exc)}") from exc
