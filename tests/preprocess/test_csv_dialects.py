"""CSV as spreadsheets and databases export it: a UTF-8 byte-order mark before the header and
quoted fields that hold the delimiter or a newline. Both steps read the same rows as from the
equivalent parquet file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from common import dataset, tables
from preprocess.cli import main as preprocess_main
from validator.cli import main as validate_main

ROWS = 400


def exported_frame() -> pd.DataFrame:
    """Text with commas, quotes and newlines inside values, numbers and a binary label."""
    notes = ["plain", "with, comma", 'with "quotes"', "two\nlines", ""]
    return pd.DataFrame(
        {
            "amount": [float(i % 37) for i in range(ROWS)],
            "note": [notes[i % len(notes)] for i in range(ROWS)],
            "label": ["yes" if i % 3 else "no" for i in range(ROWS)],
        }
    )


def write_exported_csv(frame: pd.DataFrame, path: Path) -> Path:
    path.write_text(frame.to_csv(index=False), encoding="utf-8-sig")  # with a BOM
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    return path


def test_a_bom_and_quoted_newlines_read_as_the_same_rows(tmp_path: Path) -> None:
    frame = exported_frame()
    read = tables.read_table(str(write_exported_csv(frame, tmp_path / "export.csv")))
    assert list(read.columns) == ["amount", "note", "label"]  # no BOM in the first name
    pd.testing.assert_frame_equal(read.fillna({"note": ""}), frame, check_dtype=False)


def test_both_steps_accept_an_exported_csv(
    tmp_path: Path, read_xcom: Callable[[], dict[str, Any]]
) -> None:
    source = str(write_exported_csv(exported_frame(), tmp_path / "export.csv"))
    assert (
        validate_main(["--source", source, "--target", "label", "--output", str(tmp_path / "v")])
        == 0
    )
    assert read_xcom()["row_count"] == ROWS
    out = tmp_path / "prep"
    assert preprocess_main(["--input", source, "--output", str(out), "--target", "label"]) == 0
    result = read_xcom()
    assert sum(result["row_counts"].values()) == ROWS
    test_rows = tables.read_table(dataset.raw_uri(str(out), "test"))
    assert set(test_rows["note"].fillna("")) <= set(exported_frame()["note"])


def test_a_pandas_index_stored_in_the_parquet_file_is_not_a_feature(
    tmp_path: Path, read_xcom: Callable[[], dict[str, Any]]
) -> None:
    """A frame saved with a non-range index keeps it as ``__index_level_0__``; pandas reads it
    back as the index, and so does preprocess: it is not a column to learn from."""
    frame = exported_frame().set_axis([f"row-{i}" for i in range(ROWS)])
    source = tmp_path / "indexed.parquet"
    frame.to_parquet(source)  # index=None: a non-range index is stored as a column
    out = tmp_path / "prep"
    assert preprocess_main(["--input", str(source), "--output", str(out), "--target", "label"]) == 0
    transform = dataset.load_transform(str(out))
    assert transform.input_columns == ["amount", "note"]
