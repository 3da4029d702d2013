"""The reports: anomalies.json (every anomaly, per-column statistics, drift) and report.html (one
self-contained file: summary, anomalies, drift, per-column plots; untrusted text escaped)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from contract.xcom import read_result
from demo.sample_data import TARGET
from validator.cli import main

HOSTILE = "<script>alert('x')</script>"


def refuse_nan(token: str) -> None:
    raise AssertionError(f"{token} in anomalies.json")


def read_report(out: Path) -> dict[str, Any]:
    text = (out / "anomalies.json").read_text()
    return json.loads(text, parse_constant=refuse_nan)  # type: ignore[no-any-return]


def run(source: Path, out: Path, *extra: str) -> int:
    argv = ["--source", str(source), "--target", TARGET, "--output", str(out)]
    return main([*argv, "--date", "2024-01-02", *extra])


@pytest.fixture
def hostile(sample_frame: pd.DataFrame, tmp_path: Path) -> Path:
    """The sample with a column whose name and values are markup and matplotlib math text."""
    frame = sample_frame.head(600).copy()
    frame[f"{HOSTILE} $x^2$"] = np.tile([HOSTILE, "$\\frac{$", "plain"], 200)  # bad math text
    frame.loc[0, "region"] = HOSTILE
    path = tmp_path / "hostile.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_html_report_is_self_contained_and_escapes_untrusted_text(
    hostile: Path, sample_parquet: Path, tmp_path: Path, xcom_file: Path
) -> None:
    out = tmp_path / "out"
    assert run(hostile, out, "--reference", str(sample_parquet)) == 0
    html = (out / "report.html").read_text()
    assert read_result("validate", xcom_file)["html_report_uri"] == str(out / "report.html")
    assert "<script" not in html  # every name and value is escaped
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; $x^2$" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 11  # one per column: 10 of the sample plus the hostile one
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)


def test_html_summary_counts_and_anomalies(
    sample_frame: pd.DataFrame, sample_parquet: Path, tmp_path: Path
) -> None:
    frame = sample_frame.copy()
    frame.loc[:9, "debt_ratio"] = np.inf
    frame.loc[0, "age"] = 150
    source = tmp_path / "bad.parquet"
    frame.to_parquet(source, index=False)
    out = tmp_path / "out"
    assert run(source, out, "--reference", str(sample_parquet), "--max-plots", "0") == 1
    html = (out / "report.html").read_text()
    summary = html[: html.index("<h2>Anomalies")]
    assert '<span class="status fail">FAIL</span>' in summary
    assert re.search(r"<b>1</b>errors", summary) and re.search(r"<b>1</b>warnings", summary)
    assert "<b>3,000</b>rows" in summary
    assert "column &#39;debt_ratio&#39; has 10 infinite values" in html
    assert "column &#39;age&#39; has 1 value (0.03%) outside the schema range" in html
    assert "Drift against the reference" in html


def test_passing_report_says_pass(sample_parquet: Path, tmp_path: Path) -> None:
    assert run(sample_parquet, tmp_path / "out", "--max-plots", "2") == 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert '<span class="status pass">PASS</span>' in html
    assert "every check passed" in html
    assert "Drift against the reference" not in html  # no --reference
    assert html.count('src="data:image/png') == 2
    assert "8 more have statistics only (--max-plots)" in html


def test_anomalies_json_has_statistics_of_every_column(
    sample_parquet: Path, sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run(sample_parquet, out, "--reference", str(sample_parquet), "--max-plots", "0") == 0
    found = read_report(out)
    assert found["status"] == "pass"
    assert found["fingerprint"].startswith("sha256:")
    assert found["thresholds"]["psi_error"] == 0.25
    assert set(found["columns"]) == set(sample_frame.columns)
    income = found["columns"]["income"]
    assert income["type"] == "numeric" and income["dtype"] == "float"
    assert income["null_count"] == int(sample_frame["income"].isna().sum())
    assert income["min"] == pytest.approx(sample_frame["income"].min())
    assert income["p50"] == pytest.approx(sample_frame["income"].median())
    assert income["drift"]["psi"] == 0.0
    region = found["columns"]["region"]
    counts = sample_frame["region"].value_counts()
    assert region["distinct"] == len(counts)
    assert region["top"][0] == [counts.index[0], int(counts.iloc[0])]


def test_reports_are_written_when_the_step_fails(
    sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "single.parquet"
    sample_frame.assign(**{TARGET: "no"}).to_parquet(source, index=False)
    out = tmp_path / "out"
    assert run(source, out, "--max-plots", "0") == 1
    line = capsys.readouterr().err.strip()
    assert line.endswith(f"(report: {out}/report.html; anomalies: {out}/anomalies.json)")
    assert read_report(out)["status"] == "fail"
    assert "FAIL" in (out / "report.html").read_text()
    assert not xcom_file.exists()
