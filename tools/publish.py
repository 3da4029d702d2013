"""``make schemas`` (``python -m tools.publish``): write every file generated from the code.

* ``contract/schemas/<step>.v1.json``: the JSON Schema of each step's result, from the result
  models, and the copy the DAG ships in ``dags/tabular_pipeline/schemas/`` (the DAG bundle does
  not install the step packages);
* ``dags/tabular_pipeline/flags/``: the step flags the DAG passes from its params, read from the
  steps' own parsers: the trainer's hyperparameters (what a sweep may set, with their types,
  choices and defaults) and the evaluator's promotion gate (types and defaults).

Tests fail when a published file differs from what this writes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contract.results import RESULT_MODELS
from contract.schemas import generate_schema, schema_filename

REPO = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO / "contract" / "schemas"
DAG_PACKAGE = REPO / "dags" / "tabular_pipeline"
DAG_SCHEMA_DIR = DAG_PACKAGE / "schemas"
DAG_FLAGS_DIR = DAG_PACKAGE / "flags"
JSON_TYPES = {float: "number", int: "integer", str: "string"}


def render(step: str) -> str:
    return json.dumps(generate_schema(RESULT_MODELS[step]), indent=2, sort_keys=True) + "\n"


def as_json(flags: dict[str, Any]) -> str:
    """Flags in the order the step declares them (the order of the trigger form's params)."""
    return json.dumps(flags, indent=2) + "\n"


def flag_spec(action: argparse.Action, group: str) -> dict[str, Any]:
    """One flag as the DAG sees it: its name, JSON type, choices, default and help."""
    kind = str if action.type is None else action.type
    if kind not in JSON_TYPES or action.default is None:
        raise ValueError(f"{action.option_strings[0]}: a published flag needs a type and default")
    spec: dict[str, Any] = {
        "flag": action.option_strings[0],
        "group": group,
        "type": JSON_TYPES[kind],  # type: ignore[index]
        "default": action.default,
        "help": action.help,
    }
    if action.choices is not None:
        spec["enum"] = list(action.choices)
    return spec


def published_flags(parser: argparse.ArgumentParser, groups: tuple[str, ...]) -> dict[str, Any]:
    """{flag name with underscores: spec} of every flag in the parser's ``groups``."""
    found = {g.title: g for g in parser._action_groups if g.title in groups}
    missing = sorted(set(groups) - set(found))
    if missing:
        raise ValueError(f"{parser.prog} has no argument group(s) {missing}")
    return {
        action.dest: flag_spec(action, title)
        for title in groups
        for action in found[title]._group_actions
    }


def flag_files() -> dict[str, str]:
    """{file name: content} of the DAG's flag files (the step parsers are imported here only,
    so that regenerating the result schemas alone needs no torch)."""
    from evaluator.cli import GATE_GROUP
    from evaluator.cli import build_parser as evaluator_parser
    from trainer.cli import SWEEPABLE_GROUPS
    from trainer.cli import build_parser as trainer_parser

    return {
        "trainer_hyperparameters.json": as_json(
            published_flags(trainer_parser(), SWEEPABLE_GROUPS)
        ),
        "evaluation_gate.json": as_json(published_flags(evaluator_parser(), (GATE_GROUP,))),
    }


def main() -> int:
    for folder in (SCHEMA_DIR, DAG_SCHEMA_DIR):
        folder.mkdir(exist_ok=True)
        for step in RESULT_MODELS:
            write(folder / schema_filename(step), render(step))
    DAG_FLAGS_DIR.mkdir(exist_ok=True)
    for name, text in flag_files().items():
        write(DAG_FLAGS_DIR / name, text)
    return 0


def write(path: Path, text: str) -> None:
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
