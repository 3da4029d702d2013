"""A regression target (``--task``, default ``auto``): its task resolved as preprocessing
resolves it and recorded in the reports and the schema; refused when it is text, booleans,
missing, infinite or constant; drift-checked as a numeric column (``target_drift``) instead of
the class checks; and a change of task against a stored or an older schema flagged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from common import tables
from common.task import AUTO_RULE, infer_task
from contract.xcom import read_result
from tests.validator.frames import profile_frame
from validator import cli
from validator.checks import Anomaly, Thresholds, check_against_schema, check_data
from validator.drift import compare, drift_anomalies
from validator.job import target_task
from validator.profile import TableProfile
from validator.scan import profile_table
from validator.schema import SchemaError, infer_schema, parse_schema

TARGET = "price"
ROWS = 2000


def regression_frame(rows: int = ROWS, seed: int = 3, shift: float = 0.0) -> pd.DataFrame:
    """Houses: two numeric features, a category, and a price that depends on them (fractional
    numbers, so ``auto`` makes it a regression target); ``shift`` moves every price."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 200, rows)
    rooms = rng.integers(1, 7, rows)
    town = rng.choice(["north", "south", "east"], rows)
    price = 1.5 * area + 10.0 * rooms + rng.normal(0, 20, rows) + shift
    return pd.DataFrame({"area": area, "rooms": rooms, "town": town, TARGET: price})


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def validate(source: Path, out: Path, *extra: str) -> int:
    argv = ["--source", str(source), "--target", TARGET, "--output", str(out)]
    return cli.main([*argv, "--date", "2024-01-02", "--max-plots", "1", *extra])


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "anomalies.json").read_text())  # type: ignore[no-any-return]


def checks_of(anomalies: list[Anomaly]) -> set[tuple[str, str | None, str]]:
    return {(a.check, a.column, a.severity) for a in anomalies}


# --- the flag ---------------------------------------------------------------------------------


def test_task_flag_offers_the_shared_choices_and_states_the_auto_rule() -> None:
    text = " ".join(cli.build_parser().format_help().split())
    assert "--task {auto,classification,regression}" in text
    assert AUTO_RULE in text
    assert "(default: auto)" in text


def test_an_unknown_task_is_a_usage_error(
    tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(regression_frame(100), tmp_path / "data.parquet")
    assert validate(source, tmp_path / "out", "--task", "ranking") == 2
    assert "--task" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not xcom_file.exists()


# --- resolving the task -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([0.5, 1.0, 2.0], "regression"),  # a fractional value
        (list(range(21)), "regression"),  # more than 20 distinct integers
        (list(range(20)), "classification"),  # a handful of integer codes
        (["a", "b", "c"], "classification"),
        ([True, False, True], "classification"),
    ],
    ids=["fractional", "many-integers", "integer-codes", "text", "booleans"],
)
def test_auto_gives_the_task_preprocessing_gives(values: list[Any], task: str) -> None:
    frame = pd.DataFrame({"y": values, "x": np.arange(len(values))})
    assert infer_task(frame["y"]) == task  # the shared rule on the whole column
    assert target_task("auto", profile_frame(frame, "y")) == task


def test_auto_sees_every_batch_not_a_sample() -> None:
    """Integer codes in every batch but one fractional value in the last: regression, as the
    whole column says, though a profile holds the column only batch by batch."""
    codes = np.tile(np.arange(5, dtype="float64"), 4000)
    codes[-1] = 2.5
    frame = pd.DataFrame({"y": codes})
    table = pa.Table.from_pandas(frame, preserve_index=False)

    def batches() -> Iterator[pa.RecordBatch]:
        yield from (tables.dictionary_encode(b) for b in table.to_batches(max_chunksize=1000))

    profile = profile_table(table.schema, batches, "y")
    assert infer_task(frame["y"]) == "regression"
    assert target_task("auto", profile) == "regression"
    assert target_task("auto", profile_frame(frame.iloc[:-1], "y")) == "classification"


def test_an_explicit_task_is_kept() -> None:
    table = profile_frame(regression_frame(50), TARGET)
    assert target_task("classification", table) == "classification"
    assert target_task("regression", profile_frame(pd.DataFrame({"y": ["a", "b"]}), "y")) == (
        "regression"
    )
    assert target_task("auto", profile_frame(pd.DataFrame({"x": [1.5]}), "y")) == "classification"


# --- the step on a regression target ----------------------------------------------------------


def test_a_regression_target_passes_and_is_reported_as_one(
    tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = regression_frame()
    source = write(frame, tmp_path / "data.parquet")
    out = tmp_path / "out"
    assert validate(source, out) == 0
    assert f"INFO validator.job: target {TARGET!r}: regression (--task auto)" in (
        capsys.readouterr().out
    )
    result = read_result("validate", xcom_file)
    assert result["anomaly_counts"] == {"error": 0, "warning": 0}
    found = report(out)
    assert found["task"] == "regression"
    summary = found["target_summary"]
    prices = frame[TARGET]
    assert summary["min"] == pytest.approx(prices.min())
    assert summary["max"] == pytest.approx(prices.max())
    assert summary["mean"] == pytest.approx(prices.mean())
    assert summary["p50"] == pytest.approx(prices.median())
    assert summary["p25"] == pytest.approx(prices.quantile(0.25))
    assert found["columns"][TARGET]["p99"] == summary["p99"]
    html = (out / "report.html").read_text()
    assert "(regression: min " in html and "regression target" in html
    schema = json.loads((out / "schema.json").read_text())
    assert (schema["version"], schema["task"]) == (3, "regression")
    assert schema["classes"] is None and schema["class_shares"] is None
    assert schema["columns"][TARGET]["type"] == "numeric"


def test_a_classification_report_says_so(
    sample_parquet: Path, tmp_path: Path, xcom_file: Path
) -> None:
    out = tmp_path / "out"
    argv = ["--source", str(sample_parquet), "--target", "default", "--output", str(out)]
    assert cli.main([*argv, "--max-plots", "0"]) == 0
    found = report(out)
    assert (found["task"], found["target_summary"]) == ("classification", None)
    assert "task" not in json.loads((out / "schema.json").read_text())
    assert "(classification)" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("change", "check", "words"),
    [
        ({TARGET: "cheap"}, "non_numeric_target", "holds object values, not numbers"),
        ({TARGET: True}, "non_numeric_target", "holds booleans, not numbers"),
        ({TARGET: 42.0}, "constant_target", "is constant (42)"),
    ],
    ids=["text", "booleans", "constant"],
)
def test_an_unusable_regression_target_fails_the_step_naming_it(
    change: dict[str, Any],
    check: str,
    words: str,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = write(regression_frame(200).assign(**change), tmp_path / "data.parquet")
    out = tmp_path / "out"
    assert validate(source, out, "--task", "regression") == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"validate failed: {source}: 1 validation error(s): ")
    assert f"target column {TARGET!r}" in line and words in line
    assert line.endswith(f"(report: {out}/report.html; anomalies: {out}/anomalies.json)")
    found = report(out)
    assert found["task"] == "regression"
    assert [(a["check"], a["column"]) for a in found["anomalies"]] == [(check, TARGET)]
    assert not xcom_file.exists()


def regression_checks(frame: pd.DataFrame) -> set[tuple[str, str | None, str]]:
    table = profile_frame(frame, TARGET)
    return checks_of(check_data(table, TARGET, Thresholds(), "regression"))


def test_missing_and_infinite_target_values_are_errors_naming_the_column() -> None:
    frame = regression_frame(200)
    assert regression_checks(frame) == set()
    with_nan = frame.assign(**{TARGET: frame[TARGET].where(frame.index % 50 != 0)})
    assert regression_checks(with_nan) == {("null_target", TARGET, "error")}
    (anomaly,) = check_data(profile_frame(with_nan, TARGET), TARGET, Thresholds(), "regression")
    assert anomaly.observed == 4
    assert f"target {TARGET!r} has 4 missing values" in anomaly.description
    with_inf = frame.assign(**{TARGET: frame[TARGET].where(frame.index != 7, np.inf)})
    assert regression_checks(with_inf) == {("infinite_values", TARGET, "error")}
    assert regression_checks(frame.drop(columns=[TARGET])) == {("missing_target", TARGET, "error")}


def test_class_checks_do_not_run_on_a_regression_target() -> None:
    """A regression target is checked for what regression needs (numbers, finite, not
    constant) and not for classes: one value is a constant target, not a single class."""
    frame = regression_frame(200).assign(**{TARGET: np.r_[np.full(199, 3.5), 7.25]})
    assert regression_checks(frame) == set()
    as_classes = check_data(profile_frame(frame, TARGET), TARGET, Thresholds(), "classification")
    assert checks_of(as_classes) == set()  # two classes: the class checks ran and passed
    single = frame.assign(**{TARGET: 3.5})
    assert checks_of(check_data(profile_frame(single, TARGET), TARGET, Thresholds())) == {
        ("single_class", TARGET, "error")
    }
    assert regression_checks(single) == {("constant_target", TARGET, "error")}


def test_against_its_schema_a_regression_target_has_no_label_checks() -> None:
    frame = regression_frame(seed=1)
    schema = infer_schema(profile_frame(frame, TARGET), TARGET, "regression")
    moved = regression_frame(seed=2, shift=400.0)  # every price new, most out of range
    found = check_against_schema(profile_frame(moved, TARGET), schema, Thresholds(), "regression")
    assert checks_of(found) == {("out_of_range", TARGET, "error")}
    again = regression_frame(seed=2)
    same = check_against_schema(profile_frame(again, TARGET), schema, Thresholds(), "regression")
    assert not [a for a in same if a.column == TARGET and a.severity == "error"]


# --- drift of the target ----------------------------------------------------------------------


def test_target_drift_is_named_as_such(tmp_path: Path, xcom_file: Path) -> None:
    reference = write(regression_frame(seed=1), tmp_path / "raw" / "reference.parquet")
    steady = write(regression_frame(seed=2), tmp_path / "raw" / "steady.parquet")
    assert validate(steady, tmp_path / "steady", "--reference", str(reference)) == 0
    result = read_result("validate", xcom_file)
    assert result["drift"]["columns_compared"] == 4
    assert result["drift"]["drifted_count"] == 0
    assert report(tmp_path / "steady")["columns"][TARGET]["drift"]["psi"] < 0.1

    moved = write(regression_frame(seed=2, shift=60.0), tmp_path / "raw" / "moved.parquet")
    out = tmp_path / "moved"
    assert validate(moved, out, "--reference", str(reference), "--range-margin", "1") == 1
    found = report(out)
    drifts = [a for a in found["anomalies"] if a["check"] == "target_drift"]
    assert [(a["column"], a["severity"]) for a in drifts] == [(TARGET, "error")]
    assert drifts[0]["description"].startswith(f"target {TARGET!r} drifted from the reference")
    assert not [a for a in found["anomalies"] if a["check"] == "drift"]  # features are steady
    assert found["columns"][TARGET]["drift"]["psi"] > 0.25
    assert "(target drift)" in (out / "report.html").read_text()


def test_drift_of_a_classification_target_keeps_its_name() -> None:
    reference = profile_frame(pd.DataFrame({"y": np.linspace(0, 1, 500)}), "y").columns
    current = profile_frame(pd.DataFrame({"y": np.linspace(0.6, 1.6, 500)}), "y").columns
    drifts = compare(reference, current, 10)
    as_column = drift_anomalies(drifts, Thresholds())
    as_target = drift_anomalies(drifts, Thresholds(), target="y")
    assert [(a.check, a.column) for a in as_column] == [("drift", "y")]
    assert [(a.check, a.column) for a in as_target] == [("target_drift", "y")]
    assert as_target[0].observed == as_column[0].observed


# --- the schema's task ------------------------------------------------------------------------


def test_store_records_the_task_and_a_target_turned_text_is_flagged(
    tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store" / "schema.json"
    source = write(regression_frame(), tmp_path / "day1.parquet")
    assert validate(source, tmp_path / "day1", "--schema-store", str(store)) == 0
    assert json.loads(store.read_text())["task"] == "regression"
    assert validate(source, tmp_path / "again", "--schema-store", str(store)) == 0
    capsys.readouterr()

    priced = regression_frame(seed=5)
    text = priced.assign(**{TARGET: np.where(priced[TARGET] > 150, "high", "low")})
    changed = write(text, tmp_path / "day2.parquet")
    assert validate(changed, tmp_path / "day2", "--schema-store", str(store)) == 1
    found = report(tmp_path / "day2")
    assert found["task"] == "classification"
    by_check = {a["check"]: a for a in found["anomalies"]}
    assert by_check["task_changed"]["column"] == TARGET
    assert by_check["task_changed"]["severity"] == "error"
    assert by_check["task_changed"]["description"].startswith(
        f"target {TARGET!r} was a regression target in the schema, is now a classification target"
    )
    assert "type_changed" in by_check  # the column's own check says it too
    assert "was a regression target in the schema" in capsys.readouterr().err
    assert "task_changed" in (tmp_path / "day2" / "report.html").read_text()


def test_a_regression_schema_round_trips_and_a_classification_one_is_unchanged() -> None:
    regression = infer_schema(profile_frame(regression_frame(100), TARGET), TARGET, "regression")
    document = regression.to_json()
    assert (document["version"], document["task"], document["classes"]) == (3, "regression", None)
    assert parse_schema(json.loads(json.dumps(document))) == regression
    assert regression.tasks() == {"regression"}
    labels = pd.DataFrame({"x": [1.0, 2.0], "y": ["no", "yes"]})
    classification = infer_schema(profile_frame(labels, "y"), "y").to_json()
    assert classification["version"] == 2 and "task" not in classification


def test_a_numeric_target_forced_to_classes_records_its_task() -> None:
    frame = regression_frame(100)
    schema = infer_schema(profile_frame(frame, TARGET), TARGET, "classification")
    assert (schema.version, schema.task) == (3, "classification")
    assert schema.classes is not None and len(schema.classes) == 100
    table = profile_frame(frame, TARGET)
    found = check_against_schema(table, schema, Thresholds(), "regression")
    assert checks_of(found) == {("task_changed", TARGET, "error")}


def old_schema(frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """The schema an older release stored: every target as classes, no task, version 2."""
    document = infer_schema(profile_frame(frame, target), target, "classification").to_json()
    document.pop("task", None)
    document["version"] = 2
    return document


def test_an_older_schema_of_a_numeric_target_fits_both_tasks() -> None:
    frame = regression_frame(300)
    schema = parse_schema(old_schema(frame, TARGET))
    assert schema.task is None and schema.tasks() == {"classification", "regression"}
    table = profile_frame(regression_frame(300, seed=9), TARGET)
    as_regression = check_against_schema(table, schema, Thresholds(), "regression")
    assert not {a.check for a in as_regression} & {"task_changed", "unseen_labels", "label_shift"}
    as_classes = check_against_schema(table, schema, Thresholds(), "classification")
    assert "unseen_labels" in {a.check for a in as_classes}  # checked as it always was


def test_an_older_schema_of_labels_is_classification_only() -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "y": np.tile([0, 1, 2, 3], 10)})
    schema = parse_schema(old_schema(frame, "y"))
    assert schema.tasks() == {"classification"}
    numbers = frame.assign(y=np.linspace(0, 3, 40))
    found = check_against_schema(profile_frame(numbers, "y"), schema, Thresholds(), "regression")
    assert ("task_changed", "y", "error") in checks_of(found)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"version": 3}, "version 3 schemas record the target's task"),
        ({"task": "regression"}, "version 3 schemas record the target's task"),
        ({"version": 4}, "schema version 4; this release reads version 2 or 3"),
        ({"version": 3, "task": "ranking"}, "task: Input should be"),
    ],
    ids=["v3-without-task", "v2-with-task", "future-version", "unknown-task"],
)
def test_inconsistent_schemas_are_refused(change: dict[str, Any], words: str) -> None:
    document = {**old_schema(pd.DataFrame({"y": ["a", "b"]}), "y"), **change}
    with pytest.raises(SchemaError, match=words):
        parse_schema(document)


def test_profile_of_a_regression_target_keeps_its_values_out_of_the_schema() -> None:
    """A regression target's distinct values would be one class each: none is stored."""
    table: TableProfile = profile_frame(regression_frame(), TARGET)
    assert table.labels is not None and len(table.labels) == ROWS
    assert infer_schema(table, TARGET, "regression").class_shares is None
