"""The DAG's copies of the step flags are generated from the steps' own parsers, and a change
to a parser that is not published fails here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from contract.results import RESULT_MODELS
from contract.schemas import schema_filename
from tools import publish


@pytest.mark.parametrize("name", sorted(publish.flag_files()))
def test_published_flag_files_equal_the_step_parsers(name: str) -> None:
    path = publish.DAG_FLAGS_DIR / name
    assert path.read_text(encoding="utf-8") == publish.flag_files()[name], (
        f"{path} differs from the step's parser; regenerate with `make schemas`"
    )


def test_the_sweepable_trainer_flags_are_the_model_and_optimisation_groups() -> None:
    flags = json.loads(publish.flag_files()["trainer_hyperparameters.json"])
    assert {spec["group"] for spec in flags.values()} == {"model", "optimisation"}
    assert flags["lr"] == {
        "flag": "--lr",
        "group": "optimisation",
        "type": "number",
        "default": 0.001,
        "help": "learning rate",
    }
    assert flags["optimizer"]["enum"] == ["adam", "adamw", "sgd"]
    assert flags["depth"]["type"] == "integer"
    # Chosen per run by the DAG or the operator, never swept.
    assert not {"data_path", "experiment_name", "seed", "device", "checkpoint_dir"} & set(flags)


def test_the_gate_flags_carry_the_evaluators_defaults() -> None:
    from evaluator.cli import build_parser

    flags = json.loads(publish.flag_files()["evaluation_gate.json"])
    defaults = build_parser().parse_args(["--run-id", "r", "--data-path", "d", "--model-name", "m"])
    assert list(flags) == [
        "min_accuracy",
        "min_r2",
        "min_improvement",
        "confidence",
        "slice_tolerance",
        "calibration_tolerance",
    ]
    assert {name: spec["default"] for name, spec in flags.items()} == {
        name: getattr(defaults, name) for name in flags
    }


def test_a_group_the_parser_lacks_is_refused() -> None:
    parser = argparse.ArgumentParser(prog="python -m step")
    with pytest.raises(ValueError, match=r"python -m step has no argument group\(s\) \['model'\]"):
        publish.published_flags(parser, ("model",))


def test_a_flag_without_a_default_cannot_be_published() -> None:
    parser = argparse.ArgumentParser(prog="python -m step")
    group = parser.add_argument_group("model")
    group.add_argument("--width", type=int, required=True)
    with pytest.raises(ValueError, match="--width: a published flag needs a type and default"):
        publish.published_flags(parser, ("model",))


def test_main_writes_every_published_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    published = {
        "SCHEMA_DIR": publish.SCHEMA_DIR,
        "DAG_SCHEMA_DIR": publish.DAG_SCHEMA_DIR,
        "DAG_FLAGS_DIR": publish.DAG_FLAGS_DIR,
    }
    for name in published:
        monkeypatch.setattr(publish, name, tmp_path / name)
    assert publish.main() == 0
    for name, folder in published.items():
        written = sorted(p.name for p in (tmp_path / name).iterdir())
        # What the tool writes, plus the earlier schema versions, which stay as they were.
        current = {schema_filename(step) for step in RESULT_MODELS}
        earlier = {p.name for p in folder.glob("*.json")} - set(written)
        assert all(f.startswith(tuple(f"{s}.v" for s in RESULT_MODELS)) for f in earlier), name
        assert not earlier & current, name
        assert set(written) <= {p.name for p in folder.glob("*.json")}, name
        for file in written:
            assert (tmp_path / name / file).read_bytes() == (folder / file).read_bytes(), file
    schemas = sorted(schema_filename(step) for step in RESULT_MODELS)
    assert sorted(p.name for p in (tmp_path / "SCHEMA_DIR").iterdir()) == schemas
