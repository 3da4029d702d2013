"""Bad inputs to ``python -m validator``: each fails with exit 1, one line on stderr
naming the file, column or flag, and no return.json. Unreadable data leaves no report behind;
readable data with errors leaves both reports (the error line names them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demo.sample_data import TARGET
from validator.cli import main

# A bad input: (tmp_path, sample_frame, sample_parquet) -> (source, extra flags, words in message)
Case = Callable[[Path, pd.DataFrame, Path], tuple[Path, list[str], list[str]]]


def missing_path(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, list[str], list[str]]:
    path = tmp / "nowhere" / "data.parquet"
    return path, [], [f"{path} does not exist"]


def zero_bytes(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, list[str], list[str]]:
    path = tmp / "empty.parquet"
    path.touch()
    return path, [], [f"{path} is empty (0 bytes)"]


def zero_byte_csv(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, list[str], list[str]]:
    path = tmp / "empty.csv"
    path.touch()
    return path, [], [f"{path} is empty (0 bytes)"]


def truncated(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, list[str], list[str]]:
    path = tmp / "truncated.parquet"
    path.write_bytes(good.read_bytes()[:-100])
    return path, [], [f"{path} is not a readable parquet file"]


def random_bytes(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, list[str], list[str]]:
    path = tmp / "noise.parquet"
    path.write_bytes(bytes((i * 131 + 7) % 256 for i in range(10_000)))
    return path, [], [f"{path} is not a readable parquet file"]


def wrong_delimiter(
    tmp: Path, frame: pd.DataFrame, good: Path
) -> tuple[Path, list[str], list[str]]:
    path = tmp / "pipes.csv"
    frame.head(50).to_csv(path, sep="|", index=False)
    return path, [], [str(path), "single column", "delimiter other than ','"]


def missing_reference(
    tmp: Path, frame: pd.DataFrame, good: Path
) -> tuple[Path, list[str], list[str]]:
    reference = tmp / "champion" / "train.parquet"
    return good, ["--reference", str(reference)], [f"{reference} does not exist"]


def duplicate_columns(
    tmp: Path, frame: pd.DataFrame, good: Path
) -> tuple[Path, list[str], list[str]]:
    path = tmp / "duplicates.parquet"
    columns = [pa.array(frame[name]) for name in ("age", "income", TARGET)]
    pq.write_table(pa.Table.from_arrays(columns, names=["age", "age", TARGET]), path)
    return path, [], [f"{path}: column name(s) ['age'] appear more than once"]


def duplicate_csv_header(
    tmp: Path, frame: pd.DataFrame, good: Path
) -> tuple[Path, list[str], list[str]]:
    path = tmp / "duplicates.csv"
    frame.head(50)[["age", "income", TARGET]].to_csv(path, index=False, header=["x", "x", TARGET])
    return path, [], [f"{path}: column name(s) ['x'] appear more than once"]


UNREADABLE: dict[str, Case] = {
    "missing-path": missing_path,
    "zero-bytes": zero_bytes,
    "zero-byte-csv": zero_byte_csv,
    "truncated-parquet": truncated,
    "random-bytes": random_bytes,
    "wrong-delimiter-csv": wrong_delimiter,
    "missing-reference": missing_reference,
    "duplicate-columns-parquet": duplicate_columns,
    "duplicate-columns-csv": duplicate_csv_header,
}


def missing_target(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, list[str], list[str]]:
    path = tmp / "no-target.parquet"
    frame.drop(columns=[TARGET]).to_parquet(path, index=False)
    return path, [], [f"target column '{TARGET}' is missing; columns: ['age'"]


def single_class(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, list[str], list[str]]:
    path = tmp / "single.parquet"
    frame.assign(**{TARGET: "no"}).to_parquet(path, index=False)
    return path, [], [f"target '{TARGET}' needs at least two classes, has ['no']"]


def all_null(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, list[str], list[str]]:
    path = tmp / "all-null.parquet"
    frame.assign(income=float("nan")).to_parquet(path, index=False)
    return path, [], ["column 'income' has no values at all"]


def mixed_types(tmp: Path, frame: pd.DataFrame, good: Path) -> tuple[Path, list[str], list[str]]:
    """A CSV export where a numeric column holds '?' placeholders (as in the Adult data)."""
    path = tmp / "mixed.csv"
    text = frame.assign(age=frame["age"].astype("string"))
    text.loc[[3, 40, 41], "age"] = ["?", "unknown", "?"]
    text.to_csv(path, index=False)
    return path, [], ["column 'age' mixes numbers (99.9% of its values) and text", "'?'"]


READABLE: dict[str, Case] = {
    "missing-target": missing_target,
    "single-class-target": single_class,
    "all-null-column": all_null,
    "mixed-type-column": mixed_types,
}


def run_case(case: Case, tmp: Path, frame: pd.DataFrame, good: Path, xcom: Path) -> list[str]:
    """Run the step on a case over a result left by an earlier attempt; the words to expect."""
    source, extra, words = case(tmp, frame, good)
    xcom.parent.mkdir(parents=True)
    xcom.write_text('{"left": "by an earlier attempt"}', encoding="utf-8")
    argv = ["--source", str(source), "--target", TARGET, "--output", str(tmp / "out"), *extra]
    assert main([*argv, "--max-plots", "0"]) == 1
    assert not xcom.exists()
    return [str(source), *words]


@pytest.mark.parametrize("case", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_input_fails_naming_the_file_and_writes_nothing(
    case: Case,
    tmp_path: Path,
    sample_frame: pd.DataFrame,
    sample_parquet: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    words = run_case(case, tmp_path, sample_frame, sample_parquet, xcom_file)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("validate failed: ")
    for word in words[1:]:
        assert word in line
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("case", READABLE.values(), ids=READABLE.keys())
def test_bad_data_fails_naming_the_column_after_writing_the_reports(
    case: Case,
    tmp_path: Path,
    sample_frame: pd.DataFrame,
    sample_parquet: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, *words = run_case(case, tmp_path, sample_frame, sample_parquet, xcom_file)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"validate failed: {source}: ")
    for word in words:
        assert word in line
    out = tmp_path / "out"
    assert f"(report: {out}/report.html; anomalies: {out}/anomalies.json)" in line
    assert (out / "anomalies.json").is_file() and (out / "report.html").is_file()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--min-rows", "0"], "--min-rows 0: must be at least 1"),
        (["--null-rate-warning", "-0.1"], "--null-rate-warning -0.1: must be a finite number >= 0"),
        (["--psi-error", "inf"], "--psi-error inf: must be a finite number >= 0"),
        (
            ["--label-shift-warning", "0.5"],
            "--label-shift-warning 0.5 is above --label-shift-error",
        ),
        (["--drift-bins", "1"], "--drift-bins 1: must be at least 2"),
        (["--date", "2024-13-01"], "--date '2024-13-01' is not YYYY-MM-DD"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(
    flags: list[str],
    message: str,
    sample_parquet: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--source", str(sample_parquet), "--target", TARGET, "--output", str(tmp_path / "o")]
    assert main([*argv, *flags]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"validate failed: {message}")
    assert not (tmp_path / "o").exists()
    assert not xcom_file.exists()


def write_empty(frame: pd.DataFrame, path: Path) -> Path:
    """``frame``'s columns with no rows: a parquet file, or a CSV file of just its header."""
    if path.suffix == ".csv":
        path.write_text(",".join(frame.columns) + "\n")
    else:
        frame.head(0).to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("against", ["nothing", "schema-store", "reference"])
def test_zero_rows_is_one_error_saying_so(
    suffix: str,
    against: str,
    tmp_path: Path,
    sample_frame: pd.DataFrame,
    sample_parquet: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No rows: one error that says so, not a column-by-column account of an empty table
    (all-null columns, type changes, a 100 % label shift) nor a crash on empty distributions."""
    extra: list[str] = []
    if against == "schema-store":
        store = tmp_path / "store.json"
        argv = ["--source", str(sample_parquet), "--target", TARGET, "--schema-store", str(store)]
        assert main([*argv, "--output", str(tmp_path / "first"), "--max-plots", "0"]) == 0
        extra = ["--schema-store", str(store)]
    elif against == "reference":
        extra = ["--reference", str(sample_parquet)]
    source = write_empty(sample_frame, tmp_path / f"empty{suffix}")
    out = tmp_path / "out"
    capsys.readouterr()
    argv = ["--source", str(source), "--target", TARGET, "--output", str(out), *extra]
    assert main([*argv, "--max-plots", "0"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    expected = f"validate failed: {source}: 1 validation error(s): the data has no rows"
    assert line.startswith(expected)
    document = json.loads((out / "anomalies.json").read_text())
    assert [(a["check"], a["severity"]) for a in document["anomalies"]] == [("no_rows", "error")]
    assert document["row_count"] == 0
    assert not xcom_file.exists()
