"""The step flags the DAG sets from its params, as the steps declare them: generated copies of
the trainer's hyperparameter groups and the evaluator's gate group (``make schemas`` writes
``flags/``; a test fails when they differ from the steps' parsers), so the DAG needs no import
of the step packages.

Each file maps a flag's name with underscores (``batch_size`` for ``--batch-size``) to its
``flag``, ``group``, JSON ``type`` (number, integer, string), ``default``, ``help`` and, for a
fixed set of values, ``enum``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FLAGS_DIR = Path(__file__).resolve().parent / "flags"


@cache
def load_flags(name: str) -> dict[str, dict[str, Any]]:
    return json.loads((FLAGS_DIR / f"{name}.json").read_text())  # type: ignore[no-any-return]


def trainer_hyperparameters() -> dict[str, dict[str, Any]]:
    """The trainer flags a sweep may set."""
    return load_flags("trainer_hyperparameters")


def evaluation_gate() -> dict[str, dict[str, Any]]:
    """The evaluator's promotion-gate flags."""
    return load_flags("evaluation_gate")
