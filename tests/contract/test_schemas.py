"""The published JSON Schemas are generated from the result models (never hand-edited) and
require the keys downstream tasks rely on."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from contract.results import RESULT_MODELS
from contract.schemas import current_version, load_schema, schema_filename
from tools import publish

SCHEMA_DIR = publish.SCHEMA_DIR
# Both published copies: the package's and the one the DAG bundle ships.
SCHEMA_DIRS = [SCHEMA_DIR, publish.DAG_SCHEMA_DIR]
STEPS = sorted(RESULT_MODELS)

# Keys the DAG and the downstream steps read from each result.
SEED_KEYS: dict[str, set[str]] = {
    "train": {"accuracy", "f1_score", "loss", "model_path", "run_id", "samples_per_sec"},
    "evaluate": {
        "should_deploy",
        "new_accuracy",
        "baseline_accuracy",
        "improvement",
        "run_id",
        "model_path",
    },
    "validate": {"row_count", "anomaly_counts", "schema_uri", "report_uri"},
    "preprocess": {
        "train_uri",
        "val_uri",
        "test_uri",
        "row_counts",
        "feature_count",
        "transform_uri",
    },
    "deploy": {"model_name", "version", "alias", "previous_version"},
    "score": {"rows", "output_uri", "manifest_uri", "model_version", "output_sha256"},
}


@pytest.mark.parametrize("folder", SCHEMA_DIRS)
def test_every_version_of_every_step_is_published(folder: Path) -> None:
    """The current version and each earlier one (results of an earlier image still read)."""
    published = sorted(p.name for p in folder.glob("*.json"))
    expected = [
        schema_filename(step, version)
        for step in STEPS
        for version in range(1, current_version(step) + 1)
    ]
    assert published == sorted(expected)
    assert set(SEED_KEYS) == set(STEPS)


@pytest.mark.parametrize("step", ["preprocess", "train"])
def test_the_earlier_version_still_checks_what_it_did(step: str) -> None:
    """Version 1 had no task: a classification result of then is valid in it, and the shape
    of version 2 is not."""
    v1 = load_schema(step, 1)
    assert v1["properties"]["schema_version"]["const"] == 1 and "task" not in v1["properties"]
    assert "task" in load_schema(step)["required"]


@pytest.mark.parametrize("folder", SCHEMA_DIRS)
@pytest.mark.parametrize("step", STEPS)
def test_published_schema_equals_generated(step: str, folder: Path) -> None:
    path = folder / schema_filename(step)
    assert path.read_text(encoding="utf-8") == publish.render(step), (
        f"{path} differs from the result model; regenerate with `make schemas`"
    )


@pytest.mark.parametrize("step", STEPS)
def test_load_schema_returns_the_published_file(step: str) -> None:
    path = SCHEMA_DIR / schema_filename(step)
    assert load_schema(step) == json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("step", STEPS)
def test_schema_is_valid_strict_and_versioned(step: str) -> None:
    schema = load_schema(step)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "schema_version" in schema["required"]
    version = current_version(step)
    assert schema["properties"]["schema_version"]["const"] == version
    assert schema["additionalProperties"] is False
    assert schema["$id"].endswith(f"/{step}.v{version}.json")
    assert schema["title"] == f"{step} result v{version}"


@pytest.mark.parametrize(("step", "keys"), sorted(SEED_KEYS.items()))
def test_seed_keys_are_required_properties(step: str, keys: set[str]) -> None:
    schema = load_schema(step)
    assert keys <= set(schema["properties"]), keys - set(schema["properties"])
    assert keys <= set(schema["required"]), keys - set(schema["required"])


def test_load_schema_refuses_an_unknown_step() -> None:
    with pytest.raises(KeyError, match="unknown step 'nope'"):
        load_schema("nope")
