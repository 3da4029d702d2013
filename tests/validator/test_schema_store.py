"""``--schema-store``: inferred and stored on the first run (only from data that passes, never
half-written), checked on later runs; and how it combines with ``--schema`` and ``--reference``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common import storage
from contract.xcom import read_result
from demo.sample_data import TARGET
from validator.cli import main


def validate(source: Path, out: Path, *extra: str) -> int:
    argv = [
        "--source",
        str(source),
        "--target",
        TARGET,
        "--output",
        str(out),
        "--date",
        "2024-01-02",
    ]
    return main([*argv, "--max-plots", "0", *extra])


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "anomalies.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "pipeline" / "tabular_training" / "schema.json"


def test_first_run_stores_the_schema_and_later_runs_check_against_it(
    sample_frame: pd.DataFrame, sample_parquet: Path, store: Path, tmp_path: Path, xcom_file: Path
) -> None:
    assert validate(sample_parquet, tmp_path / "day1", "--schema-store", str(store)) == 0
    first = read_result("validate", xcom_file)
    assert (first["schema_origin"], first["schema_uri"]) == ("data", str(store))
    stored = json.loads(store.read_text())
    assert stored["version"] == 2 and stored["target"] == TARGET
    assert json.loads((tmp_path / "day1" / "schema.json").read_text()) == stored
    assert report(tmp_path / "day1")["schema_stored"] is True
    assert [p.name for p in store.parent.iterdir()] == ["schema.json"]  # no temp files left

    changed = sample_frame.drop(columns=["income"])
    source = tmp_path / "day2.parquet"
    changed.to_parquet(source, index=False)
    assert validate(source, tmp_path / "day2", "--schema-store", str(store)) == 1
    found = report(tmp_path / "day2")
    assert found["schema_origin"] == "store" and found["schema_uri"] == str(store)
    assert [(a["check"], a["column"]) for a in found["anomalies"]] == [("missing_column", "income")]
    assert not (tmp_path / "day2" / "schema.json").exists()
    assert json.loads(store.read_text()) == stored  # a checked schema is never rewritten


def test_rerun_gives_the_same_schema_and_report(
    sample_parquet: Path, store: Path, tmp_path: Path, xcom_file: Path
) -> None:
    assert validate(sample_parquet, tmp_path / "a", "--schema-store", str(store)) == 0
    schema_bytes = store.read_bytes()
    assert validate(sample_parquet, tmp_path / "b", "--schema-store", str(store)) == 0
    assert read_result("validate", xcom_file)["schema_origin"] == "store"
    assert store.read_bytes() == schema_bytes
    assert validate(sample_parquet, tmp_path / "c", "--schema-store", str(store)) == 0
    second, third = report(tmp_path / "b"), report(tmp_path / "c")
    assert second == third


def test_failed_first_run_stores_nothing(
    sample_frame: pd.DataFrame, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = sample_frame.assign(
        debt_ratio=sample_frame["debt_ratio"].where(lambda s: s > 0.1, np.inf)
    )
    source = tmp_path / "bad.parquet"
    bad.to_parquet(source, index=False)
    out = tmp_path / "out"
    assert validate(source, out, "--schema-store", str(store)) == 1
    assert not store.exists()
    found = report(out)
    assert found["schema_stored"] is False
    assert found["schema_uri"] == str(out / "schema.json")  # the inferred schema, for a look
    assert (out / "schema.json").is_file()
    assert "infinite" in capsys.readouterr().err


def test_store_is_inferred_from_the_reference_when_given(
    sample_frame: pd.DataFrame, sample_parquet: Path, store: Path, tmp_path: Path, xcom_file: Path
) -> None:
    source = tmp_path / "wider.parquet"
    sample_frame.assign(extra=1.0).to_parquet(source, index=False)
    args = ("--schema-store", str(store), "--reference", str(sample_parquet))
    assert validate(source, tmp_path / "out", *args) == 0
    result = read_result("validate", xcom_file)
    assert result["schema_origin"] == "reference"
    assert result["anomaly_counts"] == {"error": 0, "warning": 1}  # the new column
    assert "extra" not in json.loads(store.read_text())["columns"]


def test_stored_schema_of_another_target_is_refused(
    sample_parquet: Path, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert validate(sample_parquet, tmp_path / "a", "--schema-store", str(store)) == 0
    argv = ["--source", str(sample_parquet), "--target", "region", "--schema-store", str(store)]
    assert main([*argv, "--output", str(tmp_path / "b")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"validate failed: --schema-store {store}: the schema is for target {TARGET!r}, "
        "not --target 'region'"
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", ["is not valid JSON"]),
        ('{"version": 1, "columns": {}}', ["schema version 1; this release reads version 2"]),
        (
            '{"version": 2, "columns": {"a": {"type": "text"}}, "target": "default"}',
            ["not a valid schema: ", "columns.a.type: Input should be 'numeric' or 'categorical'"],
        ),
    ],
    ids=["invalid-json", "old-version", "bad-column"],
)
def test_broken_store_is_refused_naming_it(
    sample_parquet: Path,
    store: Path,
    tmp_path: Path,
    content: str,
    words: list[str],
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store.parent.mkdir(parents=True)
    store.write_text(content)
    assert validate(sample_parquet, tmp_path / "out", "--schema-store", str(store)) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert str(store) in line
    for word in words:
        assert word in line
    assert store.read_text() == content  # left as it was, for a person to look at
    assert not xcom_file.exists()


def test_schema_and_store_are_exclusive(
    sample_parquet: Path, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--schema", str(store), "--schema-store", str(store))
    assert validate(sample_parquet, tmp_path / "o", *args) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file.json"
    storage.write_bytes_atomic(b"first", str(target))
    storage.write_bytes_atomic(b"second", str(target))
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_atomic_write_that_fails_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.json"
    storage.write_bytes_atomic(b"old", str(target))

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    # The last step of a local write: the complete file replaces the old one.
    monkeypatch.setattr(storage.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        storage.write_bytes_atomic(b"new", str(target))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]
