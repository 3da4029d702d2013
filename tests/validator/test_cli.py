"""``python -m validator``: schema inference, checks against a schema or a reference,
and a report that lists every problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.storage import fingerprint
from contract.xcom import read_result
from demo.sample_data import TARGET
from tests.validator.frames import profile_frame
from validator.checks import Thresholds, check_against_schema, check_data
from validator.cli import main
from validator.schema import infer_schema


def validate(source: Path | str, *extra: str, target: str = TARGET) -> int:
    """Run the step; plots are left out here (test_validate_report.py draws them)."""
    argv = ["--source", str(source), "--target", target, "--date", "2024-01-02", *extra]
    return main([*argv, "--max-plots", "0"])


def report(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "anomalies.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def schema_file(sample_parquet: Path, tmp_path: Path) -> Path:
    """The schema inferred from the sample data, as the validate step writes it."""
    out = tmp_path / "reference"
    assert validate(sample_parquet, "--output", str(out)) == 0
    return out / "schema.json"


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


# --- the step ---------------------------------------------------------------------------------


def test_good_data_passes(sample_parquet: Path, tmp_path: Path, xcom_file: Path) -> None:
    out = tmp_path / "val"
    assert validate(sample_parquet, "--output", str(out)) == 0
    result = read_result("validate", xcom_file)
    assert result["source"] == str(sample_parquet)
    assert result["date"] == "2024-01-02"
    assert result["row_count"] == 3000
    assert result["column_count"] == 10
    assert result["anomaly_counts"] == {"error": 0, "warning": 0}
    assert result["schema_uri"] == f"{out}/schema.json"
    assert result["schema_origin"] == "data"
    assert result["report_uri"] == f"{out}/anomalies.json"
    assert result["html_report_uri"] == f"{out}/report.html"
    assert result["fingerprint"] == fingerprint(str(sample_parquet))
    assert result["drift"] is None
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    schema = json.loads((out / "schema.json").read_text())
    assert schema["target"] == TARGET
    assert schema["classes"] == ["no", "yes"]
    assert schema["row_count"] == 3000
    assert schema["columns"]["age"]["type"] == "numeric"
    assert schema["columns"]["region"]["type"] == "categorical"
    assert report(out)["counts"] == {"error": 0, "warning": 0}
    assert report(out)["anomalies"] == []


def test_default_output_is_under_pipeline_home(
    sample_parquet: Path, isolated_env: Path, xcom_file: Path
) -> None:
    assert validate(sample_parquet) == 0
    folder = (isolated_env / "home").resolve() / "validate" / "2024-01-02"
    result = read_result("validate", xcom_file)
    assert result["schema_uri"] == f"{folder}/schema.json"
    assert (folder / "schema.json").is_file()
    assert (folder / "anomalies.json").is_file()


def test_data_matching_a_given_schema_passes(
    sample_parquet: Path, schema_file: Path, tmp_path: Path, xcom_file: Path
) -> None:
    out = tmp_path / "check"
    assert validate(sample_parquet, "--schema", str(schema_file), "--output", str(out)) == 0
    result = read_result("validate", xcom_file)
    assert result["schema_uri"] == str(schema_file)
    assert result["anomaly_counts"] == {"error": 0, "warning": 0}
    assert not (out / "schema.json").exists()  # a given schema is not copied
    assert report(out)["schema_uri"] == str(schema_file)


def test_schema_check_reports_every_problem(
    sample_frame: pd.DataFrame,
    schema_file: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    changed = sample_frame.drop(columns=["income"]).assign(
        region=np.arange(len(sample_frame)),  # categorical -> numeric
        extra_column=1.0,
    )
    changed.loc[:9, TARGET] = "maybe"
    source = write(changed, tmp_path / "changed.parquet")
    out = tmp_path / "check"
    capsys.readouterr()
    assert validate(source, "--schema", str(schema_file), "--output", str(out)) == 1
    found = report(out)
    by_check = {(a["check"], a["column"]): a for a in found["anomalies"]}
    assert by_check.keys() >= {
        ("missing_column", "income"),
        ("type_changed", "region"),
        ("unseen_labels", TARGET),
        ("new_column", "extra_column"),
        ("unseen_categories", TARGET),  # the label column is also checked as a column
    }
    assert by_check[("type_changed", "region")]["expected"] == "categorical"
    assert by_check[("type_changed", "region")]["observed"] == "numeric"
    assert by_check[("unseen_labels", TARGET)]["observed"] == ["maybe"]
    assert by_check[("new_column", "extra_column")]["severity"] == "warning"
    assert found["counts"] == {"error": 3, "warning": 2}
    assert found["schema_uri"] == str(schema_file)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"validate failed: {source}: 3 validation error(s): ")
    assert f"{out}/anomalies.json" in line
    for word in ("'income'", "'region'", "maybe"):
        assert word in line
    assert not xcom_file.exists()


def test_new_column_is_only_a_warning(
    sample_frame: pd.DataFrame, schema_file: Path, tmp_path: Path, xcom_file: Path
) -> None:
    source = write(sample_frame.assign(extra_column="x"), tmp_path / "wider.parquet")
    out = tmp_path / "check"
    assert validate(source, "--schema", str(schema_file), "--output", str(out)) == 0
    result = read_result("validate", xcom_file)
    assert result["anomaly_counts"] == {"error": 0, "warning": 1}
    (anomaly,) = report(out)["anomalies"]
    assert anomaly["check"] == "new_column"
    assert anomaly["column"] == "extra_column"


def test_drift_warnings_do_not_fail(
    sample_frame: pd.DataFrame, schema_file: Path, tmp_path: Path, xcom_file: Path
) -> None:
    drifted = sample_frame.copy()
    drifted.loc[:999, "tenure_months"] = np.nan  # null rate 3% -> ~35%
    drifted.loc[0, "age"] = 150  # out of range
    drifted.loc[1, "region"] = "atlantis"  # unseen category
    source = write(drifted, tmp_path / "drift.parquet")
    out = tmp_path / "check"
    assert validate(source, "--schema", str(schema_file), "--output", str(out)) == 0
    checks = {(a["check"], a["column"], a["severity"]) for a in report(out)["anomalies"]}
    assert checks == {
        ("null_rate", "tenure_months", "warning"),
        ("out_of_range", "age", "warning"),
        ("unseen_categories", "region", "warning"),
    }
    assert read_result("validate", xcom_file)["anomaly_counts"] == {"error": 0, "warning": 3}


def test_reference_data_is_checked_against(
    sample_parquet: Path, sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path
) -> None:
    source = write(sample_frame.assign(extra_column=2), tmp_path / "new.parquet")
    out = tmp_path / "check"
    assert validate(source, "--reference", str(sample_parquet), "--output", str(out)) == 0
    result = read_result("validate", xcom_file)
    assert result["schema_uri"] == f"{out}/schema.json"
    assert result["anomaly_counts"] == {"error": 0, "warning": 1}
    schema = json.loads((out / "schema.json").read_text())
    assert "extra_column" not in schema["columns"]  # inferred from the reference, not the source


def test_reference_with_unseen_label_fails(
    sample_parquet: Path,
    sample_frame: pd.DataFrame,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    changed = sample_frame.copy()
    changed.loc[:4, TARGET] = "maybe"
    source = write(changed, tmp_path / "new.parquet")
    out = tmp_path / "check"
    capsys.readouterr()
    assert validate(source, "--reference", str(sample_parquet), "--output", str(out)) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "maybe" in line
    assert f"{out}/anomalies.json" in line
    found = report(out)
    assert [(a["check"], a["severity"]) for a in found["anomalies"]] == [
        ("unseen_labels", "error"),
        ("unseen_categories", "warning"),
    ]
    assert found["counts"] == {"error": 1, "warning": 1}
    assert not xcom_file.exists()


def test_file_that_is_not_a_schema_is_refused(
    sample_parquet: Path, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"version": 1}))
    assert validate(sample_parquet, "--schema", str(bogus), "--output", str(tmp_path / "o")) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"validate failed: --schema {bogus}: not a schema (no 'columns' object)"
    assert not xcom_file.exists()


def test_bad_date_is_refused(
    sample_parquet: Path, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--source", str(sample_parquet), "--target", TARGET, "--date", "02/01/2024"]
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        "validate failed: --date '02/01/2024' is not YYYY-MM-DD"
    ]
    assert not xcom_file.exists()


def test_min_rows_threshold(
    sample_parquet: Path, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    assert validate(sample_parquet, "--min-rows", "5000", "--output", str(out)) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "only 3000 rows; at least 5000 are needed" in line
    assert [a["check"] for a in report(out)["anomalies"]] == ["too_few_rows"]
    assert not xcom_file.exists()


def test_infinite_values_fail_naming_the_column(
    sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = sample_frame.head(200).copy()
    frame.loc[[1, 2], "debt_ratio"] = [np.inf, -np.inf]
    source = write(frame, tmp_path / "inf.parquet")
    assert validate(source, "--output", str(tmp_path / "o")) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "column 'debt_ratio' has 2 infinite values" in line
    assert not xcom_file.exists()


def test_usage_error_exits_2(xcom_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--target", TARGET]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("validate failed: python -m validator: ")
    assert "--source" in line
    assert not xcom_file.exists()


# --- the pure checks --------------------------------------------------------------------------


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "x": [1.0, 2.0, np.nan, 4.0],
        "c": ["a", "b", "a", None],
        "y": [0, 1, 0, 1],
    })  # fmt: skip


def schema_of(frame: pd.DataFrame, target: str = "y") -> Any:
    return infer_schema(profile_frame(frame, target), target)


def test_infer_schema(frame: pd.DataFrame) -> None:
    schema = schema_of(frame).to_json()
    assert schema == {
        "version": 2,
        "target": "y",
        "row_count": 4,
        "columns": {
            "x": {
                "type": "numeric",
                "dtype": "float",
                "nullable": True,
                "null_rate": 0.25,
                "min": 1.0,
                "max": 4.0,
                "categories": None,
            },
            "c": {
                "type": "categorical",
                "dtype": "string",
                "nullable": True,
                "null_rate": 0.25,
                "min": None,
                "max": None,
                "categories": ["a", "b"],
            },
            "y": {
                "type": "numeric",
                "dtype": "integer",
                "nullable": False,
                "null_rate": 0.0,
                "min": 0.0,
                "max": 1.0,
                "categories": None,
            },
        },
        "classes": ["0", "1"],
        "class_shares": {"0": 0.5, "1": 0.5},
    }
    json.dumps(schema, allow_nan=False)


def check(frame: pd.DataFrame, target: str, thresholds: Thresholds) -> Any:
    return check_data(profile_frame(frame, target), target, thresholds)


def test_check_data_lists_every_problem() -> None:
    bad = pd.DataFrame({"x": [np.inf, 1.0], "empty": [None, None], "y": [1, 1]})
    found = check(bad, "y", Thresholds(min_rows=10))
    assert {(a.check, a.column) for a in found} == {
        ("too_few_rows", None),
        ("single_class", "y"),
        ("all_null", "empty"),
        ("infinite_values", "x"),
    }
    assert all(a.severity == "error" for a in found)


def test_check_data_missing_and_null_target(frame: pd.DataFrame) -> None:
    found = check(frame.drop(columns=["y"]), "y", Thresholds(min_rows=1))
    assert [(a.check, a.column) for a in found] == [("missing_target", "y")]
    with_null = frame.assign(y=[0, 1, None, 1])
    found = check(with_null, "y", Thresholds(min_rows=1))
    assert [(a.check, a.observed) for a in found] == [("null_target", 1)]


def test_check_against_own_schema_is_clean(frame: pd.DataFrame) -> None:
    table = profile_frame(frame, "y")
    assert check_against_schema(table, schema_of(frame), Thresholds()) == []


def test_check_against_schema_sorts_errors_first(frame: pd.DataFrame) -> None:
    schema = schema_of(frame)
    changed = frame.drop(columns=["x"]).assign(c=[1, 2, 3, 4], z=1, y=[0, 1, 2, 1])
    found = check_against_schema(profile_frame(changed, "y"), schema, Thresholds())
    assert [(a.severity, a.check, a.column) for a in found] == [
        ("error", "type_changed", "c"),
        ("error", "missing_column", "x"),
        ("error", "out_of_range", "y"),  # one value of four is over the 10% limit
        ("error", "unseen_labels", "y"),
        ("warning", "label_shift", "y"),  # class 0: 50% -> 25%
        ("warning", "new_column", "z"),
    ]
    assert all(isinstance(a.to_dict(), dict) for a in found)
