"""Bad inputs fail both ``python -m preprocess`` and ``python -m preprocess.validate`` with a
non-zero exit, one line on stderr naming the file or column, and no return.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from demo.sample_data import TARGET
from preprocess.cli import main as preprocess_main
from preprocess.validate.cli import main as validate_main

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


BOTH: dict[str, Case] = {
    "missing-file": missing_file,
    "zero-bytes": zero_bytes,
    "random-bytes": random_bytes,
    "truncated-parquet": truncated,
    "semicolon-csv": semicolons,
    "missing-target": missing_target,
    "single-class": single_class,
}
CASES = [
    *[pytest.param("preprocess", case, id=f"preprocess-{name}") for name, case in BOTH.items()],
    *[pytest.param("validate", case, id=f"validate-{name}") for name, case in BOTH.items()],
    pytest.param("validate", all_null, id="validate-all-null-column"),
]


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
