"""Reading tables and JSON at URIs: parquet files and folders, CSV/TSV, and clear errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from common import storage
from common.step import StepError


@pytest.fixture
def small() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, None, 1.5]})


@pytest.mark.parametrize(
    ("base", "parts", "expected"),
    [
        ("s3://bucket/key", ("x.parquet",), "s3://bucket/key/x.parquet"),
        ("s3://bucket/key/", ("raw", "t.parquet"), "s3://bucket/key/raw/t.parquet"),
        ("file:///tmp/out", ("m.json",), "file:///tmp/out/m.json"),
        ("/tmp/out", ("m.json",), "/tmp/out/m.json"),
    ],
)
def test_join_uri_keeps_the_scheme(base: str, parts: tuple[str, ...], expected: str) -> None:
    assert storage.join_uri(base, *parts) == expected


def test_parquet_round_trip(small: pd.DataFrame, tmp_path: Path) -> None:
    uri = str(tmp_path / "deep" / "folder" / "t.parquet")
    table = pa.Table.from_pandas(small, preserve_index=False)
    with storage.parquet_writer(uri, table.schema) as writer:
        writer.write_table(table)
    pd.testing.assert_frame_equal(storage.read_table(uri), small)


def test_file_uri_is_read(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    small.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(storage.read_table(path.as_uri()), small)


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t"), (".csv.gz", ",")])
def test_delimited_text_is_read(small: pd.DataFrame, tmp_path: Path, suffix: str, sep: str) -> None:
    path = tmp_path / f"t{suffix}"
    small.to_csv(path, sep=sep, index=False)
    frame = storage.read_table(str(path))
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame["a"].tolist() == [1, 2, 3]
    assert frame["b"].isna().tolist() == [False, False, True]


def test_parquet_content_with_a_csv_name_is_read_as_parquet(
    small: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "actually.csv"
    small.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(storage.read_table(str(path)), small)


def test_folder_of_parquet_files_is_read(small: pd.DataFrame, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    small.iloc[:2].to_parquet(folder / "part-0.parquet", index=False)
    small.iloc[2:].to_parquet(folder / "part-1.parquet", index=False)
    frame = storage.read_table(str(folder))
    assert sorted(frame["a"].tolist()) == [1, 2, 3]


def test_folder_without_parquet_files_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(StepError, match=re.escape(f"{folder} is a folder with no .parquet files")):
        storage.read_table(str(folder))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.parquet"
    with pytest.raises(StepError, match=f"^{re.escape(str(path))} does not exist$"):
        storage.read_table(str(path))


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.touch()
    with pytest.raises(StepError, match=r"empty \(0 bytes\)"):
        storage.read_table(str(path))


def test_csv_with_another_delimiter_is_refused(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    small.to_csv(path, sep=";", index=False)
    with pytest.raises(StepError, match="delimiter other than ','"):
        storage.read_table(str(path))


def test_unsupported_scheme_is_refused() -> None:
    with pytest.raises(StepError, match="unsupported URI"):
        storage.read_table("nosuchscheme://bucket/data.parquet")


def test_json_round_trip(tmp_path: Path) -> None:
    uri = str(tmp_path / "a" / "b.json")
    storage.write_json({"z": 1, "a": [1.5, None]}, uri)
    assert storage.read_json(uri) == {"z": 1, "a": [1.5, None]}
    assert json.loads(Path(uri).read_text())["z"] == 1


def test_write_json_refuses_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        storage.write_json({"x": float("nan")}, str(tmp_path / "n.json"))


def test_read_json_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(StepError, match=re.escape(f"{missing} does not exist")):
        storage.read_json(str(missing))
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(StepError, match=re.escape(f"{bad} is not valid JSON")):
        storage.read_json(str(bad))


def test_remove(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{}")
    storage.remove(str(path))
    assert not path.exists()
    storage.remove(str(path))  # removing again is fine


def test_fingerprint_depends_on_content_not_location(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        (folder / "day=1").mkdir(parents=True)
        (folder / "day=1" / "part.parquet").write_bytes(b"rows of day 1")
        (folder / "_SUCCESS").write_bytes(b"")
    assert storage.fingerprint(str(first)) == storage.fingerprint(str(second))
    assert storage.fingerprint(str(first)).startswith("sha256:")
    (second / "day=1" / "part.parquet").write_bytes(b"rows of day 2")
    assert storage.fingerprint(str(first)) != storage.fingerprint(str(second))


def test_fingerprint_covers_file_names_in_a_folder(tmp_path: Path) -> None:
    for name, part in (("a", "x.parquet"), ("b", "y.parquet")):
        (tmp_path / name).mkdir()
        (tmp_path / name / part).write_bytes(b"same bytes")
    assert storage.fingerprint(str(tmp_path / "a")) != storage.fingerprint(str(tmp_path / "b"))


def test_fingerprint_of_a_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(StepError, match=r"nowhere\.parquet does not exist"):
        storage.fingerprint(str(tmp_path / "nowhere.parquet"))


# --- streaming sources and atomic writes ------------------------------------------------------


def test_source_batches_read_text_dictionary_encoded(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    small.to_parquet(path, index=False)
    source = storage.open_source(str(path))
    assert source.size_bytes > 0
    (plain,) = source.batches(100)
    (encoded,) = source.batches(100, dictionary=True)
    assert plain.schema.field("b").type in (pa.string(), pa.large_string())
    assert pa.types.is_dictionary(encoded.schema.field("b").type)
    assert encoded.column("b").dictionary_decode().to_pylist() == ["x", "y", None]
    assert [b.num_rows for b in source.batches(2)] == [2, 1]


def test_hive_partitions_become_columns(small: pd.DataFrame, tmp_path: Path) -> None:
    frame = small.assign(day=["2024-01-01", "2024-01-02", "2024-01-02"])
    frame.to_parquet(tmp_path / "hive", partition_cols=["day"], index=False)
    source = storage.open_source(str(tmp_path / "hive"))
    assert source.partitions == ("day",)
    batches = list(source.batches(100, dictionary=True))
    days = [d for b in batches for d in b.column("day").dictionary_decode().to_pylist()]
    assert days == ["2024-01-01", "2024-01-02", "2024-01-02"]  # file order: sorted paths
    memory = source.in_memory(100)
    assert [b.num_rows for b in memory.batches(100, dictionary=True)] == [1, 2]


def test_open_for_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.bin"
    with pytest.raises(RuntimeError, match="boom"), storage.open_for_write(str(target)) as fh:
        fh.write(b"half")
        raise RuntimeError("boom")
    assert list((tmp_path / "out").iterdir()) == []
    with storage.open_for_write(str(target)) as fh:
        fh.write(b"whole")
    assert target.read_bytes() == b"whole"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["file.bin"]


def test_parquet_writer_writes_table_by_table(small: pd.DataFrame, tmp_path: Path) -> None:
    table = pa.Table.from_pandas(small, preserve_index=False)
    uri = str(tmp_path / "t.parquet")
    with storage.parquet_writer(uri, table.schema) as writer:
        writer.write_table(table.slice(0, 2))
        writer.write_table(table.slice(2))
    pd.testing.assert_frame_equal(pd.read_parquet(uri), small)


def test_remove_partials_cleans_what_a_killed_run_left(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "train.parquet.partial-123").write_bytes(b"x")
    (tmp_path / "raw" / "test.parquet.partial-9").write_bytes(b"x")
    (tmp_path / "train.parquet").write_bytes(b"kept")
    assert storage.remove_partials(str(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["train.parquet"]
    assert storage.remove_partials(str(tmp_path / "nowhere")) == 0


def test_unreadable_local_file_is_access_denied(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "locked.parquet"
    small.to_parquet(path, index=False)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user that reads any file (root)")
        with pytest.raises(StepError, match=f"{re.escape(str(path))}: access denied"):
            storage.read_table(str(path))
    finally:
        path.chmod(0o644)
