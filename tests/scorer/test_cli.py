"""``scorer.cli.main``: a file scored batch by batch with the verified champion, the same bytes on
every run, and bad input, a bad model or a bad flag refused with one line and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from contract.xcom import read_result
from scorer.cli import main
from tests.step_failures import assert_step_fails
from tests.trainer.workspace import stored_model_file

from .conftest import Champion

pytestmark = pytest.mark.integration

HEAVY_MODULES = ("torch", "mlflow", "pandas", "numpy", "pyarrow", "sklearn")


def score(champion: Champion, source: Path, output: Path, *flags: str) -> dict[str, Any]:
    argv = ["--model", champion.uri, "--input", str(source), "--output", str(output), *flags]
    assert main(argv) == 0
    return read_result("score")


def served_predictions(champion: Champion, frame: pd.DataFrame) -> pd.DataFrame:
    """What the served model predicts for the whole frame at once."""
    from common.tracking import configure_mlflow
    from tabular_model.integrity import load_verified_model

    configure_mlflow()
    model = load_verified_model(f"models:/{champion.name}/{champion.version}")
    columns = model.metadata.get_input_schema().input_names()
    return model.predict(frame[columns])  # type: ignore[no-any-return]


def fails(argv: list[str], capsys: pytest.CaptureFixture[str], xcom: Path, *needles: str) -> str:
    return assert_step_fails(main, "score", argv, capsys, xcom, *needles)


def test_scores_every_row_in_batches_as_the_served_model_does(
    store: Champion, raw_rows: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scores" / "predictions.parquet"
    result = score(store, raw_rows, output, "--keep-columns", "row_id", "--batch-rows", "100")
    frame = pd.read_parquet(raw_rows)
    scored = pd.read_parquet(output)
    expected = served_predictions(store, frame)
    assert list(scored.columns) == ["row_id", *expected.columns]
    assert list(scored.columns[1:]) == ["prediction", "proba_no", "proba_yes"]
    assert scored["row_id"].tolist() == frame["row_id"].tolist()
    pd.testing.assert_frame_equal(scored.drop(columns=["row_id"]), expected, check_dtype=False)
    assert result["rows"] == len(frame)
    assert result["batches"] == -(-len(frame) // 100)
    assert (result["model_name"], result["model_version"]) == (store.name, store.version)
    assert result["model_run_id"] == store.run_id
    assert result["output_format"] == "parquet"
    manifest = json.loads(Path(result["manifest_uri"]).read_text())
    assert result["manifest_uri"] == f"{output}.manifest.json"
    assert {k: manifest[k] for k in ("rows", "model_uri", "model_version", "model_run_id")} == {
        "rows": len(frame), "model_uri": store.uri, "model_version": store.version,
        "model_run_id": store.run_id,
    }  # fmt: skip
    assert manifest["input_fingerprint"] == result["input_fingerprint"]
    assert manifest["output_sha256"] == result["output_sha256"]
    import hashlib

    assert result["output_sha256"] == "sha256:" + hashlib.sha256(output.read_bytes()).hexdigest()
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "predictions.parquet",
        "predictions.parquet.manifest.json",
    ]


def test_a_rerun_writes_the_same_bytes(store: Champion, raw_rows: Path, tmp_path: Path) -> None:
    first = score(store, raw_rows, tmp_path / "a.parquet", "--batch-rows", "128")
    second = score(store, raw_rows, tmp_path / "b.parquet", "--batch-rows", "128")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert first["output_sha256"] == second["output_sha256"]


def test_csv_in_and_out_and_csv_bytes_do_not_depend_on_the_batch_size(
    store: Champion, raw_rows: Path, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    pd.read_parquet(raw_rows).to_csv(source, index=False)
    small = score(
        store, source, tmp_path / "small.csv", "--keep-columns", "row_id", "--batch-rows", "50"
    )
    large = score(store, source, tmp_path / "large.csv", "--keep-columns", "row_id")
    assert (small["batches"], large["batches"], small["output_format"]) == (10, 1, "csv")
    assert (tmp_path / "small.csv").read_bytes() == (tmp_path / "large.csv").read_bytes()
    scored = pd.read_csv(tmp_path / "small.csv")
    assert list(scored.columns) == ["row_id", "prediction", "proba_no", "proba_yes"]
    assert len(scored) == small["rows"] == 453


def test_a_value_the_model_refuses_fails_naming_file_rows_and_column(
    store: Champion,
    raw_rows: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame = pd.read_parquet(raw_rows)
    frame["age"] = frame["age"].astype(object)
    frame.loc[250, "age"] = "forty"
    frame["age"] = frame["age"].astype(str)
    source = tmp_path / "bad.parquet"
    frame.to_parquet(source, index=False)
    output = tmp_path / "out" / "scores.parquet"
    argv = ["--model", store.uri, "--input", str(source), "--output", str(output)]
    fails([*argv, "--batch-rows", "200"], capsys, xcom_file,
          f"{source} batch 1 (rows 200-399)", "count from row 200", "'age'",
          "row 50, 'forty'", "INVALID_PARAMETER_VALUE")  # fmt: skip
    assert not output.exists()
    assert list(output.parent.iterdir()) == []  # no partial file left behind


def test_a_missing_column_fails_naming_it_and_an_earlier_output_stays(
    store: Champion,
    raw_rows: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "scores.parquet"
    score(store, raw_rows, output)
    before = output.read_bytes(), Path(f"{output}.manifest.json").read_bytes()
    source = tmp_path / "no-age.parquet"
    pd.read_parquet(raw_rows).drop(columns=["age"]).to_parquet(source, index=False)
    argv = ["--model", store.uri, "--input", str(source), "--output", str(output)]
    line = fails(argv, capsys, xcom_file, str(source), "rows 0-452", "'age'")
    assert "Failed to enforce schema" not in line  # the model's reason, not the batch
    assert (output.read_bytes(), Path(f"{output}.manifest.json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        ("models:/scored-classifier@nobody", "has no alias 'nobody'"),
        ("models:/no-such-model@champion", "'no-such-model'"),
        ("models:/scored-classifier/7", "has no version 7"),
    ],
)
def test_an_unknown_model_alias_or_version_fails_in_one_line(
    model: str, needle: str, store: Champion, raw_rows: Path, tmp_path: Path,
    xcom_file: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    output = tmp_path / "scores.parquet"
    fails(["--model", model, "--input", str(raw_rows), "--output", str(output)], capsys,
          xcom_file, f"--model {model}", needle)  # fmt: skip
    assert not output.exists()


def test_missing_or_unreadable_input_fails_naming_it(
    store: Champion, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "scores.parquet"
    absent = tmp_path / "absent.parquet"
    base = ["--model", store.uri, "--output", str(output)]
    fails([*base, "--input", str(absent)], capsys, xcom_file, f"{absent} does not exist")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    fails([*base, "--input", str(garbage)], capsys, xcom_file, str(garbage), "not a readable")
    assert not output.exists()


def test_a_kept_column_must_exist(
    store: Champion,
    raw_rows: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--model", store.uri, "--input", str(raw_rows), "--output", str(tmp_path / "o.csv")]
    fails([*argv, "--keep-columns", "row_id", "customer"], capsys, xcom_file,
          str(raw_rows), "--keep-columns ['customer'] not found")  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--model", "runs:/abc/model"], "--model: expected models:/NAME@ALIAS"),
        (["--batch-rows", "0"], "--batch-rows: expected a whole number from 1"),
        (["--output", "scores.json"], "--output scores.json: expected a file name ending in"),
        (["--output", "in.csv", "--input", "in.csv"], "is the --input"),
        (["--keep-columns", "a", "a"], "--keep-columns names ['a'] more than once"),
    ],
)
def test_usage_errors_exit_2(
    flags: list[str], needle: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {"--model": "models:/m@champion", "--input": "in.parquet", "--output": "out.parquet"}
    argv = [a for k, v in base.items() if k not in flags for a in (k, v)] + flags
    assert_step_fails(main, "score", argv, capsys, xcom_file, needle, rc=2)


def test_a_tampered_champion_is_refused_and_nothing_is_written(
    champion: Champion, raw_rows: Path, tmp_path: Path, xcom_file: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Last in this module: it changes the champion's stored weights (restored afterwards)."""
    champion.activate(monkeypatch)
    weights = stored_model_file(champion.run_id, "weights.safetensors")
    original = weights.read_bytes()
    output = tmp_path / "scores.parquet"
    try:
        weights.write_bytes(original + b"\0")
        argv = ["--model", champion.uri, "--input", str(raw_rows), "--output", str(output)]
        fails(argv, capsys, xcom_file, f"--model {champion.uri} (version 1) failed its integrity "
              "check", "weights.safetensors")  # fmt: skip
    finally:
        weights.write_bytes(original)
    assert not output.exists()


def test_the_cli_imports_nothing_heavy_and_help_works() -> None:
    code = (
        "import sys, scorer.cli\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
        "raise SystemExit(scorer.cli.main(['--help']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert first == "[]"
    assert "--keep-columns" in "\n".join(rest)
