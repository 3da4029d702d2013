"""Bad inputs fail both ``python -m preprocess`` and ``python -m validator`` with a
non-zero exit, one line on stderr naming the file or column, and no return.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from common import tables
from demo.sample_data import TARGET
from preprocess.cli import main as preprocess_main
from validator.cli import main as validate_main

# A bad input: (tmp_path, sample_frame, sample_parquet) -> (path, target, words in the message)
Case = Callable[[Path, pd.DataFrame, Path], tuple[Path, str, list[str]]]


def missing_file(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    path = tmp / "nowhere" / "data.parquet"
    return path, TARGET, [f"{path} does not exist"]


def zero_bytes(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    path = tmp / "empty.parquet"
    path.touch()
    return path, TARGET, [str(path), "0 bytes"]


def random_bytes(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    path = tmp / "noise.parquet"
    path.write_bytes(bytes((i * 37 + 11) % 256 for i in range(4096)))
    return path, TARGET, [str(path), "not a readable parquet file"]


def truncated(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    path = tmp / "truncated.parquet"
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, TARGET, [str(path), "not a readable parquet file"]


def semicolons(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    path = tmp / "semicolons.csv"
    frame.head(100).to_csv(path, sep=";", index=False)
    return path, TARGET, [str(path), "delimiter"]


def missing_target(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    return good, "label", [str(good), "'label'"]


def single_class(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    path = tmp / "single.parquet"
    frame.head(200).assign(**{TARGET: "no"}).to_parquet(path, index=False)
    return path, TARGET, [str(path), f"'{TARGET}'"]


def all_null(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    path = tmp / "all-null.parquet"
    frame.head(200).assign(income=None).to_parquet(path, index=False)
    return path, TARGET, [str(path), "'income'", "no values"]


def mixed_csv(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    """Numbers in the rows the column types are inferred from, then text (see csv_block)."""
    path = tmp / "mixed.csv"
    rows = frame.head(400).copy()
    rows["age"] = rows["age"].astype(object)
    rows.loc[350, "age"] = "forty-two"
    rows.to_csv(path, index=False)
    return path, TARGET, [str(path), "'age'", "mixed types", "forty-two"]


def mixed_parquet_folder(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, str, list[str]]:
    folder = tmp / "parts"
    folder.mkdir()
    frame.head(100).to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[100:200].astype({"age": str}).to_parquet(folder / "part-1.parquet", index=False)
    words = [str(folder), "'age'", "mixed types", "part-0.parquet", "part-1.parquet"]
    return folder, TARGET, words


BOTH: dict[str, Case] = {
    "missing-file": missing_file,
    "zero-bytes": zero_bytes,
    "random-bytes": random_bytes,
    "truncated-parquet": truncated,
    "semicolon-csv": semicolons,
    "missing-target": missing_target,
    "single-class": single_class,
    "all-null-column": all_null,
}
PREPROCESS: dict[str, Case] = {
    "mixed-types-csv": mixed_csv,
    "mixed-types-parquet-folder": mixed_parquet_folder,
}
CASES = [
    *[pytest.param("preprocess", case, id=f"preprocess-{name}") for name, case in BOTH.items()],
    *[pytest.param("validate", case, id=f"validate-{name}") for name, case in BOTH.items()],
    *[pytest.param("preprocess", c, id=f"preprocess-{name}") for name, c in PREPROCESS.items()],
]


@pytest.fixture(autouse=True)
def csv_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Column types of a CSV come from its first block (16 MiB); a 4 KiB block lets a small
    file have rows after it."""
    monkeypatch.setattr(tables, "CSV_BLOCK_BYTES", 4096)


@pytest.mark.parametrize(("step", "case"), CASES)
def test_bad_input_fails_with_one_line(
    step: str,
    case: Case,
    tmp_path: Path,
    sample_frame: pd.DataFrame,
    sample_parquet: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, target, words = case(tmp_path, sample_frame, sample_parquet)
    out = tmp_path / "out"
    xcom_file.parent.mkdir(parents=True)
    xcom_file.write_text('{"left": "by an earlier attempt"}', encoding="utf-8")
    if step == "preprocess":
        argv = ["--input", str(path), "--output", str(out), "--target", target]
        code = preprocess_main(argv)
    else:
        argv = ["--source", str(path), "--output", str(out), "--target", target]
        code = validate_main(argv)
    assert code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{step} failed: ")
    for word in words:
        assert word in lines[0]
    assert not xcom_file.exists()
    assert not (out / "manifest.json").exists()
