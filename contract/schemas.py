"""The published JSON Schemas (``contract/schemas/<step>.v<N>.json``), generated from the models.

A result carries its ``schema_version``; the current version of each step is the one its model
writes. An earlier version's file stays published, unchanged, so that results written by an
earlier image are still read and checked against the shape they were written in."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from contract.results import RESULT_MODELS, StepResult


def current_version(step: str) -> int:
    """The schema version the step's result model writes."""
    return int(RESULT_MODELS[step].model_fields["schema_version"].default)


def schema_filename(step: str, version: int | None = None) -> str:
    return f"{step}.v{current_version(step) if version is None else version}.json"


def generate_schema(model: type[StepResult]) -> dict[str, Any]:
    """The JSON Schema of one result model, with a stable ``$id`` and title."""
    version = current_version(model.step)
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://tabular-gpu-pipeline/contract/schemas/{schema_filename(model.step)}"
    schema["title"] = f"{model.step} result v{version}"
    schema["required"] = sorted(set(schema.get("required", [])) | {"schema_version"})
    return schema


@cache
def load_schema(step: str, version: int | None = None) -> dict[str, Any]:
    """The published schema for ``step`` (its current version by default) as shipped in the
    package; KeyError for an unknown step or version."""
    if step not in RESULT_MODELS:
        raise KeyError(f"unknown step {step!r}; known: {sorted(RESULT_MODELS)}")
    path = resources.files("contract").joinpath("schemas", schema_filename(step, version))
    if not path.is_file():
        raise KeyError(f"no published {step} schema version {version}")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def payload_version(step: str, payload: dict[str, Any]) -> int:
    """The schema version a payload says it follows (the current one when it says nothing
    usable: the schema then names what is wrong)."""
    version = payload.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    return current_version(step)
