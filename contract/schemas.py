"""The published JSON Schemas (``contract/schemas/<step>.v1.json``), generated from the models."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from contract.results import RESULT_MODELS, StepResult

SCHEMA_VERSION = 1


def schema_filename(step: str) -> str:
    return f"{step}.v{SCHEMA_VERSION}.json"


def generate_schema(model: type[StepResult]) -> dict[str, Any]:
    """The JSON Schema of one result model, with a stable ``$id`` and title."""
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://tabular-gpu-pipeline/contract/schemas/{schema_filename(model.step)}"
    schema["title"] = f"{model.step} result v{SCHEMA_VERSION}"
    schema["required"] = sorted(set(schema.get("required", [])) | {"schema_version"})
    return schema


@cache
def load_schema(step: str) -> dict[str, Any]:
    """The published schema for ``step`` as shipped in the package."""
    if step not in RESULT_MODELS:
        raise KeyError(f"unknown step {step!r}; known: {sorted(RESULT_MODELS)}")
    text = resources.files("contract").joinpath("schemas", schema_filename(step)).read_text()
    return json.loads(text)  # type: ignore[no-any-return]
