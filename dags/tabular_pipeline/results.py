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
SCHEMA_VERSION = 1


class ResultError(ValueError):
    """A step's result is missing or breaks its schema."""


@cache
def load_schema(step: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{step}.v{SCHEMA_VERSION}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def require_result(step: str, value: Any, source: str) -> dict[str, Any]:
    """``value`` when it is a valid ``step`` result; otherwise ResultError naming ``source``
    (the task it came from). None (no return.json, or an upstream bug) is an error too."""
    import jsonschema

    if value is None:
        raise ResultError(f"{source} pushed no result (return.json missing or empty)")
    try:
        jsonschema.validate(value, load_schema(step))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ResultError(
            f"{source} result breaks {step}.v{SCHEMA_VERSION}: {where}: {exc.message}"
        ) from None
    if not _finite(value):
        raise ResultError(f"{source} result holds NaN or infinity")
    return value  # type: ignore[no-any-return]


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True
