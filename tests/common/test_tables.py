"""Reading raw tables at URIs (parquet files and folders, hive partitions, CSV/TSV) and writing
parquet, with clear errors."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common import tables
from common.step import StepError


@pytest.fixture
def small() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, None, 1.5]})


def test_parquet_round_trip(small: pd.DataFrame, tmp_path: Path) -> None:
    uri = str(tmp_path / "deep" / "folder" / "t.parquet")
    table = pa.Table.from_pandas(small, preserve_index=False)
    with tables.parquet_writer(uri, table.schema) as writer:
        writer.write_table(table)
    pd.testing.assert_frame_equal(tables.read_table(uri), small)


def test_file_uri_is_read(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    small.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(tables.read_table(path.as_uri()), small)


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t"), (".csv.gz", ",")])
def test_delimited_text_is_read(small: pd.DataFrame, tmp_path: Path, suffix: str, sep: str) -> None:
    path = tmp_path / f"t{suffix}"
    small.to_csv(path, sep=sep, index=False)
    frame = tables.read_table(str(path))
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame["a"].tolist() == [1, 2, 3]
    assert frame["b"].isna().tolist() == [False, False, True]


def test_parquet_content_with_a_csv_name_is_read_as_parquet(
    small: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "actually.csv"
    small.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(tables.read_table(str(path)), small)


def test_folder_of_parquet_files_is_read(small: pd.DataFrame, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    small.iloc[:2].to_parquet(folder / "part-0.parquet", index=False)
    small.iloc[2:].to_parquet(folder / "part-1.parquet", index=False)
    frame = tables.read_table(str(folder))
    assert sorted(frame["a"].tolist()) == [1, 2, 3]


def test_folder_without_parquet_files_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(StepError, match=re.escape(f"{folder} is a folder with no .parquet files")):
        tables.read_table(str(folder))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.parquet"
    with pytest.raises(StepError, match=f"^{re.escape(str(path))} does not exist$"):
        tables.read_table(str(path))


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.touch()
    with pytest.raises(StepError, match=r"empty \(0 bytes\)"):
        tables.read_table(str(path))


def test_csv_with_another_delimiter_is_refused(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    small.to_csv(path, sep=";", index=False)
    with pytest.raises(StepError, match="delimiter other than ','"):
        tables.read_table(str(path))


def test_source_batches_read_text_dictionary_encoded(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    small.to_parquet(path, index=False)
    source = tables.open_source(str(path))
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
    source = tables.open_source(str(tmp_path / "hive"))
    assert source.partitions == ("day",)
    batches = list(source.batches(100, dictionary=True))
    days = [d for b in batches for d in b.column("day").dictionary_decode().to_pylist()]
    assert days == ["2024-01-01", "2024-01-02", "2024-01-02"]  # file order: sorted paths
    memory = source.in_memory(100)
    assert [b.num_rows for b in memory.batches(100, dictionary=True)] == [1, 2]


def test_parquet_writer_writes_table_by_table(small: pd.DataFrame, tmp_path: Path) -> None:
    table = pa.Table.from_pandas(small, preserve_index=False)
    uri = str(tmp_path / "t.parquet")
    with tables.parquet_writer(uri, table.schema) as writer:
        writer.write_table(table.slice(0, 2))
        writer.write_table(table.slice(2))
    pd.testing.assert_frame_equal(pd.read_parquet(uri), small)


def test_unreadable_local_file_is_access_denied(small: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "locked.parquet"
    small.to_parquet(path, index=False)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user that reads any file (root)")
        with pytest.raises(StepError, match=f"{re.escape(str(path))}: access denied"):
            tables.read_table(str(path))
    finally:
        path.chmod(0o644)


def duplicated_parquet(folder: Path) -> tuple[str, str]:
    path = folder / "dup.parquet"
    columns = [pa.array([1.0, 2.0]), pa.array([3.0, 4.0]), pa.array(["x", "y"])]
    pq.write_table(pa.Table.from_arrays(columns, names=["a", "a", "b"]), path)
    return str(path), str(path)


def duplicated_csv(folder: Path) -> tuple[str, str]:
    path = folder / "dup.csv"
    path.write_text("a,b,a,b,c\n1,2,3,4,5\n")
    return str(path), str(path)


def duplicated_in_one_file_of_a_folder(folder: Path) -> tuple[str, str]:
    parts = folder / "parts"
    parts.mkdir()
    pq.write_table(pa.table({"a": [1.0], "b": ["x"]}), parts / "part-0.parquet")
    columns = [pa.array([1.0]), pa.array(["y"]), pa.array([2.0])]
    pq.write_table(pa.Table.from_arrays(columns, names=["a", "b", "a"]), parts / "part-1.parquet")
    return str(parts), f"{parts}/part-1.parquet"


@pytest.mark.parametrize(
    ("make", "columns"),
    [
        (duplicated_parquet, "['a']"),
        (duplicated_csv, "['a', 'b']"),
        (duplicated_in_one_file_of_a_folder, "['a']"),
    ],
    ids=["parquet", "csv", "folder"],
)
def test_duplicate_column_names_are_refused_naming_the_file_and_columns(
    make: Callable[[Path], tuple[str, str]], columns: str, tmp_path: Path
) -> None:
    uri, file = make(tmp_path)
    with pytest.raises(StepError) as raised:
        tables.open_source(uri)
    assert str(raised.value) == (
        f"{file}: column name(s) {columns} appear more than once; every column needs a name "
        "of its own (rename or drop the duplicates)"
    )


def test_a_slow_reader_does_not_make_the_source_read_ahead(tmp_path: Path) -> None:
    """Memory is bounded by a row group, not the input: while the consumer of the first batch
    is busy, the source decodes no further row groups (a scanner that reads ahead as fast as it
    can would have decoded most of the file by then)."""
    path = tmp_path / "groups.parquet"
    group = pa.table({f"x{i}": pa.array(range(20_000), pa.float64()) for i in range(10)})
    pq.write_table(pa.concat_tables([group] * 20), path, row_group_size=20_000)
    before = pa.total_allocated_bytes()
    batches = tables.open_source(str(path)).batches(20_000)
    first = next(batches)
    time.sleep(1.0)  # a consumer busy with the first batch
    held = pa.total_allocated_bytes() - before
    assert first.num_rows == 20_000
    assert held < 3 * group.nbytes, f"{held / group.nbytes:.1f} row groups held"
    assert sum(b.num_rows for b in batches) == 19 * 20_000
