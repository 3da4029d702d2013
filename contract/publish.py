"""Regenerate ``contract/schemas/*.json`` from the result models: ``python -m contract.publish``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contract.results import RESULT_MODELS
from contract.schemas import generate_schema, schema_filename

SCHEMA_DIR = Path(__file__).parent / "schemas"


def render(step: str) -> str:
    return json.dumps(generate_schema(RESULT_MODELS[step]), indent=2, sort_keys=True) + "\n"


def main() -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for step in RESULT_MODELS:
        path = SCHEMA_DIR / schema_filename(step)
        path.write_text(render(step))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
