"""``python -m validator`` against a real S3 API (moto's server on loopback): a
partitioned source and a reference in the bucket, reports and the schema store written there,
errors that still leave the reports, and buckets that refuse access or do not exist."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import s3fs

from common import storage
from contract.xcom import read_result
from demo.sample_data import TARGET
from tests.s3 import access_refused, object_keys
from validator.cli import main

pytestmark = pytest.mark.integration


def validate(source: str, output: str, *extra: str) -> int:
    argv = ["--source", source, "--target", TARGET, "--output", output, "--max-plots", "2"]
    return main([*argv, *extra])


def failure_line(err: str) -> str:
    """The step's one failure line (s3fs's I/O thread may also log to a stale captured stream
    of an earlier test, which is noise of the test harness)."""
    (line,) = [line for line in err.splitlines() if line.startswith("validate failed")]
    return line


def upload(frame: pd.DataFrame, local: Path, uri: str, partition: bool = False) -> str:
    """``frame`` as parquet at ``uri`` (a hive-partitioned folder by region when asked)."""
    if partition:
        frame.to_parquet(local, partition_cols=["region"], index=False)
    else:
        frame.to_parquet(local, index=False)
    s3fs.S3FileSystem().put(str(local), uri.removeprefix("s3://"), recursive=partition)
    return uri


def test_source_reference_reports_and_schema_store_on_s3(
    sample_frame: pd.DataFrame, s3_bucket: str, s3_server: str, tmp_path: Path, xcom_file: Path
) -> None:
    source = upload(sample_frame, tmp_path / "today", f"s3://{s3_bucket}/daily", partition=True)
    reference = upload(sample_frame, tmp_path / "ref.parquet", f"s3://{s3_bucket}/ref.parquet")
    store = f"s3://{s3_bucket}/schemas/churn.json"
    out = f"s3://{s3_bucket}/runs/1/validate"
    assert validate(source, out, "--schema-store", store, "--reference", reference) == 0
    result = read_result("validate", xcom_file)
    assert result["row_count"] == 3000
    assert result["schema_uri"] == store
    assert result["schema_origin"] == "reference"
    assert result["html_report_uri"] == f"{out}/report.html"
    assert result["drift"]["reference_uri"] == reference
    assert result["fingerprint"] == storage.fingerprint(source)
    keys = object_keys(s3_server, s3_bucket)
    assert [k for k in keys if not k.startswith(("daily/", "ref."))] == [
        "runs/1/validate/anomalies.json",
        "runs/1/validate/report.html",
        "runs/1/validate/schema.json",
        "schemas/churn.json",
    ]
    stored = json.loads(s3fs.S3FileSystem().cat(store.removeprefix("s3://")))
    assert stored["target"] == TARGET and "region" in stored["columns"]
    # The next run is checked against the stored schema.
    assert validate(source, f"s3://{s3_bucket}/runs/2/validate", "--schema-store", store) == 0
    assert read_result("validate", xcom_file)["schema_origin"] == "store"


def test_an_error_on_s3_data_still_writes_both_reports(
    sample_frame: pd.DataFrame,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    xcom_file: Path,
) -> None:
    broken = sample_frame.drop(columns=[TARGET])
    source = upload(broken, tmp_path / "bad.parquet", f"s3://{s3_bucket}/bad.parquet")
    out = f"s3://{s3_bucket}/runs/3/validate"
    assert validate(source, out) == 1
    err = capsys.readouterr().err
    assert f"(report: {out}/report.html; anomalies: {out}/anomalies.json)" in err
    document = json.loads(s3fs.S3FileSystem().cat(f"{s3_bucket}/runs/3/validate/anomalies.json"))
    assert document["status"] == "fail"
    assert not xcom_file.exists()


def test_source_bucket_refusing_access_is_named(
    sample_frame: pd.DataFrame, s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = upload(sample_frame, tmp_path / "d.parquet", f"s3://{s3_bucket}/d.parquet")
    with access_refused():
        assert validate(source, str(tmp_path / "out")) == 1
    line = failure_line(capsys.readouterr().err)
    assert line.startswith(f"validate failed: {source}: access denied")
    assert not (tmp_path / "out").exists()


def test_report_bucket_refusing_access_is_named(
    sample_parquet: Path, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = f"s3://{s3_bucket}/runs/4/validate"
    with access_refused():
        assert validate(str(sample_parquet), out) == 1
    line = failure_line(capsys.readouterr().err)
    assert line.startswith(f"validate failed: {out}/schema.json: access denied")


def test_missing_bucket_is_named(
    s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = "s3://no-such-bucket-here/daily/data.parquet"
    assert validate(uri, str(tmp_path / "out")) == 1
    line = failure_line(capsys.readouterr().err)
    assert line == f"validate failed: {uri} does not exist"
