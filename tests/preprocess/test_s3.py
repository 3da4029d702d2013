"""``python -m preprocess`` against a real S3 API (moto's server on loopback): a partitioned input,
outputs written to the bucket and read back by the trainer's reader, a failure in the middle of
the writes leaving nothing committed, and buckets that refuse access or do not exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pytest
import s3fs

from common import dataset, storage
from common.step import StepError
from contract.xcom import read_result
from demo.sample_data import TARGET
from preprocess import passes
from preprocess.cli import main
from tests import s3
from tests.s3 import access_refused, object_keys

pytestmark = pytest.mark.integration


def run(input_uri: str, output_uri: str, *extra: str) -> int:
    return main(["--input", input_uri, "--output", output_uri, "--target", TARGET, *extra])


@pytest.fixture
def partitioned(sample_frame: pd.DataFrame, s3_bucket: str, tmp_path: Path) -> str:
    """The sample data as a hive-partitioned dataset (``region=<value>/``) in the bucket."""
    local = tmp_path / "partitioned"
    sample_frame.to_parquet(local, partition_cols=["region"], index=False)
    s3fs.S3FileSystem().put(str(local), f"{s3_bucket}/daily", recursive=True)
    return f"s3://{s3_bucket}/daily"


def fail_on_call(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Make the ``call``-th encoded batch of the write pass raise (a crash in mid-write)."""
    real: Callable[..., Any] = passes.encode_batch
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call:
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(passes, "encode_batch", flaky)


def test_partitioned_input_to_s3_output(
    partitioned: str,
    s3_bucket: str,
    s3_server: str,
    xcom_file: Path,
    tmp_path: Path,
) -> None:
    out = f"s3://{s3_bucket}/runs/1/preprocess"
    assert run(partitioned, out, "--in-memory-limit-mb", "0") == 0  # streamed from S3 twice
    result = read_result("preprocess", xcom_file)
    assert result["train_uri"] == f"{out}/train.parquet"
    assert result["manifest_uri"] == f"{out}/manifest.json"
    assert sum(result["row_counts"].values()) == 3000
    keys = object_keys(s3_server, s3_bucket)
    assert [k for k in keys if k.startswith("runs/")] == [
        f"runs/1/preprocess/{name}"
        for name in (
            "manifest.json", "raw/sample.parquet", "raw/test.parquet", "test.parquet",
            "train.parquet", "transform.json", "val.parquet",
        )
    ]  # fmt: skip
    transform = dataset.load_transform(out)
    assert "region" in [c.name for c in transform.categorical]  # the partition column
    train = dataset.load_split(out, transform, "train")
    assert train.rows == result["row_counts"]["train"]
    manifest = dataset.read_manifest(out)
    assert manifest["fingerprint"] == result["fingerprint"] == storage.fingerprint(partitioned)


def test_failure_in_mid_write_commits_nothing(
    partitioned: str,
    s3_bucket: str,
    s3_server: str,
    monkeypatch: pytest.MonkeyPatch,
    xcom_file: Path,
) -> None:
    out = f"s3://{s3_bucket}/runs/2/preprocess"
    with monkeypatch.context() as patch:
        fail_on_call(patch, call=4)  # three of six batches were written to every split
        assert run(partitioned, out, "--batch-rows", "500") == 1
    assert not xcom_file.exists()
    assert [k for k in object_keys(s3_server, s3_bucket) if k.startswith("runs/")] == []
    assert run(partitioned, out, "--batch-rows", "500") == 0
    assert (
        dataset.read_manifest(out)["row_counts"]
        == read_result("preprocess", xcom_file)["row_counts"]
    )


def test_failed_rerun_over_a_complete_output_withdraws_its_manifest(
    partitioned: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = f"s3://{s3_bucket}/runs/3/preprocess"
    assert run(partitioned, out) == 0
    fail_on_call(monkeypatch, call=2)
    assert run(partitioned, out, "--numeric-scaling", "quantile") == 1
    with pytest.raises(StepError, match="not a complete preprocess output"):
        dataset.load_transform(out)


def test_input_bucket_refusing_access_is_named(
    partitioned: str,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with access_refused():
        assert run(partitioned, str(tmp_path / "out")) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"preprocess failed: {partitioned}: access denied")
    assert not (tmp_path / "out").exists()


def test_output_bucket_refusing_access_is_named(
    sample_parquet: Path,
    s3_bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = f"s3://{s3_bucket}/runs/4/preprocess"
    with access_refused():
        assert run(str(sample_parquet), out) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"preprocess failed: {out}/manifest.json: access denied")


def test_missing_bucket_is_named(
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = "s3://no-such-bucket-here/daily/data.parquet"
    assert run(uri, str(tmp_path / "out")) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"preprocess failed: {uri} does not exist"


@pytest.mark.slow
def test_failure_after_parts_were_uploaded_aborts_the_upload(
    s3_bucket: str, s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output larger than S3's 5 MiB part size is uploaded in parts while it is written; a
    crash then must abort the multipart upload, so no object appears."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(150_000, 20)), columns=[f"x{i}" for i in range(20)])
    frame[TARGET] = rng.choice(["no", "yes"], len(frame))
    source = tmp_path / "wide.parquet"
    frame.to_parquet(source, index=False)
    client = s3.s3_client(s3_server)
    in_progress: list[int] = []

    def uploads() -> int:
        listing = client.list_multipart_uploads(Bucket=s3_bucket)
        return len(listing.get("Uploads", []))

    real = passes.encode_batch

    def crash_at_the_end(transform: Any, part: Any) -> Any:
        if part.num_rows and uploads():  # a part of train.parquet is already in the bucket
            in_progress.append(uploads())
            raise RuntimeError("killed")
        return real(transform, part)

    monkeypatch.setattr(passes, "encode_batch", crash_at_the_end)
    # S3's smallest part (5 MiB) instead of s3fs's 50 MiB, so a small test file has parts.
    monkeypatch.setitem(fsspec.config.conf, "s3", {"default_block_size": 5 * 2**20})
    s3fs.S3FileSystem.clear_instance_cache()
    out = f"s3://{s3_bucket}/runs/5/preprocess"
    assert run(str(source), out, "--batch-rows", "10000", "--numeric-scaling", "standard") == 1
    assert in_progress, "no multipart upload was in progress when the step failed"
    assert uploads() == 0
    assert [k for k in object_keys(s3_server, s3_bucket) if k.startswith("runs/")] == []
