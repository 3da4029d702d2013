"""Write a step's result to ``$XCOM_RETURN_PATH`` and read it back, both checked against the
published schema. The KubernetesPodOperator sidecar pushes whatever JSON it finds there."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import jsonschema

from contract.results import StepResult
from contract.schemas import load_schema

DEFAULT_XCOM_PATH = "/airflow/xcom/return.json"
MAX_RESULT_BYTES = 16 * 1024


class ResultError(ValueError):
    """A result that breaks the contract: it is never written, and a consumer refuses it."""


def xcom_path() -> Path:
    return Path(os.environ.get("XCOM_RETURN_PATH", DEFAULT_XCOM_PATH))


def non_finite_paths(value: Any, path: str = "") -> list[str]:
    """Paths of NaN/inf numbers (json.loads accepts the non-standard NaN/Infinity tokens)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [path or "<root>"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{path}/{k}".lstrip("/"))]
    if isinstance(value, list):
        return [
            p for i, v in enumerate(value) for p in non_finite_paths(v, f"{path}/{i}".lstrip("/"))
        ]
    return []


def validate_payload(step: str, payload: Any) -> dict[str, Any]:
    """Check ``payload`` against the published schema of ``step``; return it unchanged."""
    if payload is None:
        raise ResultError(f"{step} result is missing (None): the step wrote no return.json")
    if not isinstance(payload, dict):
        raise ResultError(f"{step} result must be a JSON object, got {type(payload).__name__}")
    errors = sorted(
        jsonschema.Draft202012Validator(load_schema(step)).iter_errors(payload),
        key=lambda e: list(e.absolute_path),
    )
    not_finite = sorted(non_finite_paths(payload))
    if not_finite:
        raise ResultError(f"{step} result has NaN or infinity at {', '.join(not_finite)}")
    if errors:
        details = "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
        )
        raise ResultError(f"{step} result does not match {step}.v1 schema: {details}")
    return payload


def encode_result(result: StepResult) -> str:
    """The compact JSON text of a result, validated, finite and within the size cap."""
    payload = result.model_dump(mode="json")
    validate_payload(result.step, payload)
    try:
        text = json.dumps(payload, allow_nan=False, sort_keys=True, separators=(",", ":"))
    except ValueError as exc:  # NaN/inf slipped past the model (e.g. model_construct)
        raise ResultError(f"{result.step} result contains NaN or infinity: {exc}") from exc
    size = len(text.encode())
    if size > MAX_RESULT_BYTES:
        raise ResultError(
            f"{result.step} result is {size} bytes, over the {MAX_RESULT_BYTES}-byte XCom cap; "
            "pass large data by URI"
        )
    return text


def write_result(result: StepResult, path: Path | None = None) -> Path:
    """Atomically write ``result`` to ``path`` (default ``$XCOM_RETURN_PATH``).

    The text goes to a temporary file in the same folder, is fsynced, then renamed over the
    target, so a reader sees either no file or the whole result.
    """
    target = path or xcom_path()
    text = encode_result(result)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def parse_result(step: str, text: str | None) -> dict[str, Any]:
    """Parse and validate a result read back as text (a consumer's side of the contract)."""
    if text is None or not text.strip():
        raise ResultError(f"{step} result is empty: the step wrote no return.json")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"{step} result is not valid JSON: {exc}") from exc
    return validate_payload(step, payload)


def read_result(step: str, path: Path | None = None) -> dict[str, Any]:
    """Read and validate the result file of ``step``."""
    target = path or xcom_path()
    if not target.exists():
        raise ResultError(f"{step} result is missing: {target} does not exist")
    return parse_result(step, target.read_text(encoding="utf-8"))
