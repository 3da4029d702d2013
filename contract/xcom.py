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
from contract.schemas import current_version, load_schema, payload_version

DEFAULT_XCOM_PATH = "/airflow/xcom/return.json"
MAX_RESULT_BYTES = 16 * 1024
RESULT_FILE_MODE = 0o644  # readable by the XCom sidecar and the host, whoever they run as


class ResultError(ValueError):
    """A result that breaks the contract: it is never written, and a consumer refuses it."""


def xcom_path() -> Path:
    return Path(os.environ.get("XCOM_RETURN_PATH", DEFAULT_XCOM_PATH))


# What JSON does not carry faithfully, found by ``unrepresentable``.
NOT_FINITE = "NaN or infinity"  # json.loads accepts the non-standard NaN/Infinity tokens
NOT_UNICODE = "text that is not valid Unicode"  # a lone surrogate: UTF-8 cannot encode it


def unrepresentable(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, problem) of every NaN/inf number and every key or string that is not valid
    Unicode in ``value``; path segments are escaped so that a message can show them."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(path or "<root>", NOT_FINITE)]
    if isinstance(value, str) and not is_unicode(value):
        return [(path or "<root>", NOT_UNICODE)]
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            child = f"{path}/{printable(str(key))}".lstrip("/")
            if isinstance(key, str) and not is_unicode(key):
                found.append((child, NOT_UNICODE))
            found += unrepresentable(item, child)
        return found
    if isinstance(value, list | tuple):
        return [
            bad
            for i, v in enumerate(value)
            for bad in unrepresentable(v, f"{path}/{i}".lstrip("/"))
        ]
    return []


def is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode escaped (messages end up on stderr)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def refuse_unrepresentable(step: str, value: Any) -> None:
    """Raise ``ResultError`` naming every place where ``value`` holds NaN/inf or invalid
    Unicode, e.g. "train result has NaN or infinity at accuracy"."""
    paths_of: dict[str, list[str]] = {}
    for path, problem in sorted(unrepresentable(value)):
        paths_of.setdefault(problem, []).append(path)
    if paths_of:
        details = "; ".join(f"{problem} at {', '.join(p)}" for problem, p in paths_of.items())
        raise ResultError(f"{step} result has {details}")


def validate_payload(step: str, payload: Any) -> dict[str, Any]:
    """Check ``payload`` against the published schema of ``step``; return it unchanged."""
    if payload is None:
        raise ResultError(f"{step} result is missing (None): the step wrote no return.json")
    if not isinstance(payload, dict):
        raise ResultError(f"{step} result must be a JSON object, got {type(payload).__name__}")
    version = payload_version(step, payload)
    try:
        schema = load_schema(step, version)
    except KeyError as exc:
        raise ResultError(
            f"{step} result has schema_version {version}, which this code does not know "
            f"(it writes {current_version(step)})"
        ) from exc
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(payload),
        key=lambda e: list(e.absolute_path),
    )
    refuse_unrepresentable(step, payload)
    if errors:
        details = "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
        )
        raise ResultError(f"{step} result does not match {step}.v{version} schema: {details}")
    return payload


def encode_result(result: StepResult) -> str:
    """The compact JSON text of a result, validated, finite and within the size cap."""
    # The Python values first: the JSON dump silently replaces a lone surrogate in a key.
    refuse_unrepresentable(result.step, result.model_dump())
    payload = result.model_dump(mode="json")
    validate_payload(result.step, payload)
    try:
        text = json.dumps(payload, allow_nan=False, sort_keys=True, separators=(",", ":"))
    except ValueError as exc:  # e.g. an integer of more digits than Python converts to text
        raise ResultError(f"{result.step} result cannot be written as JSON: {exc}") from exc
    check_size(result.step, text)
    return text


def check_size(step: str, text: str) -> None:
    """Raise ``ResultError`` when ``text`` is over the XCom cap (counted in UTF-8 bytes)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RESULT_BYTES:
        raise ResultError(
            f"{step} result is {size} bytes, over the {MAX_RESULT_BYTES}-byte XCom cap; "
            "pass large data by URI"
        )


def write_result(result: StepResult, path: Path | None = None) -> Path:
    """Atomically write ``result`` to ``path`` (default ``$XCOM_RETURN_PATH``), mode 0644.

    The text goes to a temporary file in the same folder, is fsynced, then renamed over the
    target, so a reader sees either no file or the whole result.
    """
    target = path or xcom_path()
    text = encode_result(result)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            # mkstemp makes the file private (0600).
            os.fchmod(fh.fileno(), RESULT_FILE_MODE)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def parse_result(step: str, text: str | None) -> dict[str, Any]:
    """Parse and validate a result read back as text (a consumer's side of the contract); a
    ``ResultError`` for anything that is not a valid result, whatever the text holds."""
    if text is None or not text.strip():
        raise ResultError(f"{step} result is empty: the step wrote no return.json")
    check_size(step, text)
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"{step} result is not valid JSON: {exc}") from exc
    except ValueError as exc:  # an integer of more digits than Python converts from text
        raise ResultError(f"{step} result cannot be read as JSON: {exc}") from exc
    except RecursionError as exc:
        raise ResultError(f"{step} result cannot be read as JSON: nested too deeply") from exc
    try:
        return validate_payload(step, payload)
    except RecursionError as exc:
        raise ResultError(f"{step} result is nested too deeply to be a result") from exc


def read_result(step: str, path: Path | None = None) -> dict[str, Any]:
    """Read and validate the result file of ``step``; a ``ResultError`` naming the file when
    it is missing, unreadable, not UTF-8 or not a valid result."""
    target = path or xcom_path()
    try:
        data = target.read_bytes()
    except FileNotFoundError as exc:
        raise ResultError(f"{step} result is missing: {target} does not exist") from exc
    except OSError as exc:
        raise ResultError(f"{step} result {target} cannot be read: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultError(
            f"{step} result {target} is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from exc
    return parse_result(step, text)
