"""Drift against reference data: PSI and Jensen-Shannon distance per column, the thresholds, and
the step with ``--reference``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contract.xcom import read_result
from demo.sample_data import TARGET
from tests.validator.frames import columns
from validator.checks import Thresholds
from validator.cli import main
from validator.drift import MISSING, OTHER, compare, drift_anomalies, js_distance, psi
from validator.profile import sorted_quantiles


def test_psi_and_js_by_hand() -> None:
    before, after = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(before, after) == pytest.approx(expected)
    assert psi(before, before) == 0.0
    assert js_distance(before, before) == 0.0
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert math.isfinite(psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])))  # empty bins


def test_same_distribution_does_not_drift() -> None:
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"x": rng.normal(size=20_000), "c": rng.choice(list("abc"), 20_000)})
    current = pd.DataFrame({"x": rng.normal(size=20_000), "c": rng.choice(list("abc"), 20_000)})
    drifts = compare(columns(reference), columns(current), 10)
    assert set(drifts) == {"x", "c"}
    assert all(d.psi < 0.01 and d.js < 0.05 for d in drifts.values())
    assert drift_anomalies(drifts, Thresholds()) == []


def test_numeric_bins_are_reference_quantiles_with_open_ends_and_a_missing_bin() -> None:
    reference = pd.DataFrame({"x": np.arange(1000, dtype="float64")})
    current = pd.DataFrame({"x": [-50.0, 5000.0, np.nan, np.inf] * 250})
    (drift,) = compare(columns(reference), columns(current), 4).values()
    assert drift.bins[-1] == MISSING
    assert drift.bins[0].startswith("< ") and drift.bins[-2].startswith(">= ")
    assert drift.reference.tolist() == pytest.approx([0.25, 0.25, 0.25, 0.25, 0.0])
    # below-range and above-range values land in the end bins; NaN and inf count as missing
    assert drift.current.tolist() == pytest.approx([0.25, 0.0, 0.0, 0.25, 0.5])
    assert drift.psi > 1


def test_shifted_numeric_column_is_an_error_and_a_slight_one_a_warning() -> None:
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"big": rng.normal(0, 1, 10_000), "small": rng.normal(0, 1, 10_000)})
    current = pd.DataFrame({"big": rng.normal(1, 1, 10_000), "small": rng.normal(0.45, 1, 10_000)})
    drifts = compare(columns(reference), columns(current), 10)
    found = {a.column: a.severity for a in drift_anomalies(drifts, Thresholds())}
    assert found == {"big": "error", "small": "warning"}
    assert 0.1 < drifts["small"].psi < 0.25 < drifts["big"].psi


def test_categorical_bins_hold_top_categories_others_and_missing() -> None:
    reference = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    current = pd.DataFrame({"c": ["a"] * 20 + ["new"] * 60 + [None] * 20})
    (drift,) = compare(columns(reference), columns(current), 10).values()
    assert drift.bins == ["a", "b", "c", OTHER, MISSING]
    assert drift.reference.tolist() == pytest.approx([0.5, 0.3, 0.2, 0.0, 0.0])
    assert drift.current.tolist() == pytest.approx([0.2, 0.0, 0.0, 0.6, 0.2])
    (anomaly,) = drift_anomalies({"c": drift}, Thresholds())
    assert anomaly.severity == "error"
    assert "'(other)' holds 60.0% of rows, was 0.0%" in anomaly.description


def test_columns_not_comparable_are_skipped() -> None:
    reference = pd.DataFrame({"typed": [1.0, 2.0], "empty": [np.nan, np.nan], "gone": [1, 2]})
    current = pd.DataFrame({"typed": ["a", "b"], "empty": [1.0, 2.0], "new": [1, 2]})
    assert compare(columns(reference), columns(current), 10) == {}


def test_constant_reference_column_has_one_value_bin() -> None:
    reference = pd.DataFrame({"x": [3.0] * 100})
    current = pd.DataFrame({"x": [3.0] * 50 + [4.0] * 50})
    (drift,) = compare(columns(reference), columns(current), 10).values()
    assert drift.bins == ["all values"]  # the missing bin is empty on both sides and dropped
    assert drift.psi == 0.0  # a constant reference cannot tell 3 from 4: the range check can


# --- the step ----------------------------------------------------------------------------------


def run(source: Path, reference: Path, out: Path, *extra: str) -> int:
    argv = ["--source", str(source), "--reference", str(reference), "--target", TARGET]
    return main([*argv, "--output", str(out), "--date", "2024-01-02", "--max-plots", "0", *extra])


def test_step_reports_drift_summary(
    sample_frame: pd.DataFrame, sample_parquet: Path, tmp_path: Path, xcom_file: Path
) -> None:
    drifted = sample_frame.assign(income=sample_frame["income"] * 1.3)
    source = tmp_path / "drifted.parquet"
    drifted.to_parquet(source, index=False)
    assert run(source, sample_parquet, tmp_path / "out") == 0
    result = read_result("validate", xcom_file)
    assert result["schema_origin"] == "reference"
    summary = result["drift"]
    assert summary["reference_uri"] == str(sample_parquet)
    assert summary["columns_compared"] == 10
    assert summary["max_psi_column"] == "income"
    assert summary["drifted_columns"] == ["income"]
    assert 0.1 < summary["max_psi"] < 0.25
    assert result["anomaly_counts"]["warning"] >= 1
    report = json.loads((tmp_path / "out" / "anomalies.json").read_text())
    income = report["columns"]["income"]["drift"]
    assert income["psi"] == pytest.approx(summary["max_psi"])
    assert len(income["bins"]) == len(income["reference_shares"]) == len(income["current_shares"])


def test_drift_over_the_error_threshold_fails_the_step(
    sample_frame: pd.DataFrame,
    sample_parquet: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "drifted.parquet"
    sample_frame.assign(income=sample_frame["income"] * 1.3).to_parquet(source, index=False)
    out = tmp_path / "out"
    assert run(source, sample_parquet, out, "--psi-warning", "0.01", "--psi-error", "0.05") == 1
    line = capsys.readouterr().err.strip()
    assert "column 'income' drifted from the reference: PSI" in line
    assert f"{out}/report.html" in line and f"{out}/anomalies.json" in line
    assert not xcom_file.exists()


def test_warning_threshold_above_error_is_refused(
    sample_parquet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sample_parquet, sample_parquet, tmp_path / "o", "--psi-warning", "0.5") == 1
    assert capsys.readouterr().err.strip() == (
        "validate failed: --psi-warning 0.5 is above --psi-error 0.25"
    )


@pytest.mark.slow
def test_drift_of_a_million_rows() -> None:
    """Vectorised binning: a million rows of 4 numeric and 2 categorical columns."""
    rng = np.random.default_rng(3)
    rows = 1_000_000

    def frame(shift: float) -> pd.DataFrame:
        numbers = {f"n{i}": rng.normal(shift * i, 1, rows) for i in range(4)}
        cats = {f"c{i}": rng.choice([f"v{j}" for j in range(30)], rows) for i in range(2)}
        return pd.DataFrame(numbers | cats)

    drifts = compare(columns(frame(0.0)), columns(frame(0.1)), 10)
    assert drifts["n0"].psi < 0.001 < drifts["n3"].psi
    assert drifts["c0"].psi < 0.001


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_sorted_quantiles_match_numpy(size: int) -> None:
    values = np.sort(np.random.default_rng(size).normal(size=size))
    wanted = [0.0, 0.01, 0.25, 0.5, 0.995, 1.0]
    assert sorted_quantiles(values, wanted) == pytest.approx(np.quantile(values, wanted))
