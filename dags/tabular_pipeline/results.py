"""Check what a step pushed through XCom against the published result contract.

The schemas in ``schemas/`` are generated copies of ``contract/schemas`` (``make schemas``
writes both; a test fails when they differ), so the DAG needs no import of the step packages.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


class ResultError(ValueError):
    """A step's result is missing or breaks its schema."""


@cache
def load_schema(step: str, version: int | None = None) -> dict[str, Any] | None:
    """The published schema of ``step`` at ``version`` (default: the latest); None when there
    is none."""
    if version is None:
        version = max(published_versions(step), default=0)
    path = SCHEMA_DIR / f"{step}.v{version}.json"
    return json.loads(path.read_text()) if path.is_file() else None


@cache
def published_versions(step: str) -> list[int]:
    return sorted(int(p.stem.rsplit(".v", 1)[1]) for p in SCHEMA_DIR.glob(f"{step}.v*.json"))


def require_result(step: str, value: Any, source: str) -> dict[str, Any]:
    """``value`` when it is a valid ``step`` result of the schema version it says it follows
    (any published one: an earlier image's results still read; without a usable version, the
    latest checks it); otherwise ResultError naming ``source`` (the task it came from). None
    (no return.json, or an upstream bug) is an error too."""
    import jsonschema

    if value is None:
        raise ResultError(f"{source} pushed no result (return.json missing or empty)")
    said = value.get("schema_version") if isinstance(value, dict) else None
    version = said if isinstance(said, int) and not isinstance(said, bool) else None
    if version is not None and version not in published_versions(step):
        raise ResultError(
            f"{source} result breaks {step}: schema_version {version} is not one of the "
            f"published {published_versions(step)}"
        )
    version = version or max(published_versions(step))
    schema = load_schema(step, version)
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ResultError(
            f"{source} result breaks {step}.v{version}: {where}: {exc.message}"
        ) from None
    if not _finite(value):
        raise ResultError(f"{source} result holds NaN or infinity")
    return value  # type: ignore[no-any-return]


def task_of(result: dict[str, Any]) -> str:
    """The task of a preprocess, train or evaluate result: version 1 results are all
    classification."""
    return str(result.get("task", "classification"))


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True
