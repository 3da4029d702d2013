"""Regenerate ``contract/schemas/*.json`` from the result models, and the copy the DAG ships in
``dags/tabular_pipeline/schemas/`` (the DAG bundle does not install this package):
``python -m contract.publish``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contract.results import RESULT_MODELS
from contract.schemas import generate_schema, schema_filename

SCHEMA_DIR = Path(__file__).parent / "schemas"
DAG_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "dags" / "tabular_pipeline" / "schemas"


def render(step: str) -> str:
    return json.dumps(generate_schema(RESULT_MODELS[step]), indent=2, sort_keys=True) + "\n"


def main() -> int:
    for folder in (SCHEMA_DIR, DAG_SCHEMA_DIR):
        folder.mkdir(exist_ok=True)
        for step in RESULT_MODELS:
            path = folder / schema_filename(step)
            path.write_text(render(step))
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
