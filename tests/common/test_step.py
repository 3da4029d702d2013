"""The step runner: exit 0 only with a valid result written; otherwise one line on stderr (and in
the termination log), a non-zero exit and no return.json."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from common.step import StepArgumentParser, StepError, UsageError, one_line, run_step
from contract.results import StepResult, TrainResult
from contract.xcom import read_result
from tests.contract.conftest import TRAIN_FIELDS

PROG = "python -m demo_step"


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog=PROG, description="a step used by the runner tests")
    p.add_argument("--run-id", required=True, help="run id to report")
    p.add_argument("--fail", choices=["step", "multiline", "crash", "invalid", "long"])
    p.add_argument("--epochs", type=int, default=1, help="epochs")
    return p


def body(args: argparse.Namespace) -> StepResult:
    if args.fail == "step":
        raise StepError("data.parquet: column 'income' has 3 infinite values")
    if args.fail == "multiline":
        raise StepError("data.parquet:\n  column 'income'\n\thas   3 infinite values\n")
    if args.fail == "long":
        raise StepError("x" * 10_000)
    if args.fail == "crash":
        raise RuntimeError("boom")
    if args.fail == "invalid":
        return TrainResult.model_construct(**{**TRAIN_FIELDS, "accuracy": float("nan")})
    return TrainResult(**{**TRAIN_FIELDS, "run_id": args.run_id, "epochs": args.epochs})


def run(argv: list[str]) -> int:
    return run_step("train", build_parser(), body, argv)


@pytest.fixture
def termination_log(isolated_env: Path) -> Path:
    """The termination log file, created as Kubernetes does before the container starts."""
    path = isolated_env / "termination-log"
    path.write_text("", encoding="utf-8")
    return path


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_success_writes_the_result_and_exits_0(
    xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--run-id", "abc", "--epochs", "7"]) == 0
    payload = read_result("train", xcom_file)
    assert payload["run_id"] == "abc"
    assert payload["epochs"] == 7
    assert stderr_lines(capsys) == []


def test_success_leaves_the_termination_log_empty(termination_log: Path) -> None:
    assert run(["--run-id", "abc"]) == 0
    assert termination_log.read_text(encoding="utf-8") == ""


def test_step_error_exits_1_with_one_line(
    xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--run-id", "abc", "--fail", "step"]) == 1
    assert stderr_lines(capsys) == [
        "train failed: data.parquet: column 'income' has 3 infinite values"
    ]
    assert not xcom_file.exists()


def test_multiline_message_is_reported_on_one_line(
    xcom_file: Path, capsys: pytest.CaptureFixture[str], termination_log: Path
) -> None:
    assert run(["--run-id", "abc", "--fail", "multiline"]) == 1
    line = "train failed: data.parquet: column 'income' has 3 infinite values"
    assert stderr_lines(capsys) == [line]
    assert termination_log.read_text(encoding="utf-8") == line + "\n"
    assert not xcom_file.exists()


def test_failure_is_written_to_the_termination_log(
    termination_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--run-id", "abc", "--fail", "step"]) == 1
    (line,) = stderr_lines(capsys)
    assert termination_log.read_text(encoding="utf-8") == line + "\n"


def test_termination_log_is_not_created_when_absent(isolated_env: Path) -> None:
    assert run(["--run-id", "abc", "--fail", "step"]) == 1
    assert not (isolated_env / "termination-log").exists()


def test_termination_log_is_capped_at_4096_characters(
    termination_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--run-id", "abc", "--fail", "long"]) == 1
    (line,) = stderr_lines(capsys)
    assert len(line) == len("train failed: ") + 10_000
    assert termination_log.read_text(encoding="utf-8") == line[:4096] + "\n"


def test_stale_result_is_removed_when_the_step_fails(
    xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--run-id", "first"]) == 0
    assert xcom_file.exists()
    assert run(["--run-id", "second", "--fail", "step"]) == 1
    assert not xcom_file.exists()


def test_crash_exits_1_with_the_exception_on_one_line(
    xcom_file: Path, capsys: pytest.CaptureFixture[str], termination_log: Path
) -> None:
    xcom_file.parent.mkdir(parents=True)
    xcom_file.write_text('{"stale": true}', encoding="utf-8")
    assert run(["--run-id", "abc", "--fail", "crash"]) == 1
    assert stderr_lines(capsys) == ["train failed: RuntimeError: boom"]
    assert termination_log.read_text(encoding="utf-8") == "train failed: RuntimeError: boom\n"
    assert not xcom_file.exists()


def test_invalid_result_exits_1_and_writes_nothing(
    xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--run-id", "abc", "--fail", "invalid"]) == 1
    (line,) = stderr_lines(capsys)
    assert line.startswith("train failed: ")
    assert "NaN or infinity" in line
    assert not xcom_file.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--run-id", "abc", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: --run-id"),
        (["--run-id", "abc", "--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
        (["--run-id", "abc", "--fail", "sometimes"], "argument --fail: invalid choice"),
    ],
    ids=["unknown-flag", "missing-flag", "bad-type", "bad-choice"],
)
def test_usage_error_exits_2_with_one_line(
    argv: list[str],
    expected: str,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
    termination_log: Path,
) -> None:
    assert run(argv) == 2
    (line,) = stderr_lines(capsys)
    assert line.startswith(f"train failed: {PROG}: ")
    assert expected in line
    assert termination_log.read_text(encoding="utf-8") == line + "\n"
    assert not xcom_file.exists()


def test_usage_error_removes_a_stale_result(xcom_file: Path) -> None:
    assert run(["--run-id", "first"]) == 0
    assert run(["--run-id", "second", "--bogus"]) == 2
    assert not xcom_file.exists()


def test_help_exits_0_and_writes_no_result(
    xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr()
    assert f"usage: {PROG}" in out.out
    assert "--run-id" in out.out
    assert out.err == ""
    assert not xcom_file.exists()


def test_invalid_log_level_is_a_one_line_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    assert run(["--run-id", "abc"]) != 0
    (line,) = stderr_lines(capsys)
    assert "LOG_LEVEL" in line or "verbose" in line.lower()


def test_parser_raises_usage_error_instead_of_exiting() -> None:
    with pytest.raises(UsageError, match=f"^{PROG}: unrecognized arguments: --x$"):
        build_parser().parse_args(["--run-id", "a", "--x"])
    assert issubclass(UsageError, StepError)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("a\nb", "a b"),
        ("  lots   of\t\tspace \r\n", "lots of space"),
        ("", "failed without a message"),
        (" \n ", "failed without a message"),
    ],
)
def test_one_line(message: str, expected: str) -> None:
    assert one_line(message) == expected


def test_xcom_path_that_is_a_folder_fails_with_one_line_naming_it(
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    termination_log: Path,
) -> None:
    folder = isolated_env / "xcom-folder"
    folder.mkdir()
    monkeypatch.setenv("XCOM_RETURN_PATH", str(folder))
    before = sorted(isolated_env.iterdir())
    assert run(["--run-id", "abc"]) == 1
    (line,) = stderr_lines(capsys)
    assert line.startswith(f"train failed: XCOM_RETURN_PATH {folder}: ")
    assert "a folder" in line
    assert folder.is_dir() and list(folder.iterdir()) == []
    assert sorted(isolated_env.iterdir()) == before
    assert termination_log.read_text(encoding="utf-8") == line + "\n"


def test_mlflow_logs_go_to_stdout_and_stderr_stays_empty(
    xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow  # configures its loggers with a stderr handler of their own

    def logs_like_mlflow(args: argparse.Namespace) -> StepResult:
        logging.getLogger("mlflow.pyfunc").info("Validating input example against signature")
        logging.getLogger(mlflow.__name__).warning("a warning of MLflow's")
        return body(args)

    assert run_step("train", build_parser(), logs_like_mlflow, ["--run-id", "abc"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    assert "INFO mlflow.pyfunc: Validating input example against signature" in out.out
    assert "WARNING mlflow: a warning of MLflow's" in out.out
    assert read_result("train", xcom_file)["run_id"] == "abc"


def test_a_credential_in_a_failure_or_a_log_line_is_masked(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The last safety net: whatever a step logs or fails with, a URI's password is masked on
    stdout, on stderr and in the termination log."""
    termination_log = tmp_path / "termination-log"
    termination_log.touch()
    monkeypatch.setenv("TERMINATION_LOG_PATH", str(termination_log))
    uri = "https://pipeline:hunter2@mlflow.example.com/api?token=abc"

    def body(args: object) -> None:
        logging.getLogger("step").info("talking to %s", uri)
        raise StepError(f"cannot reach {uri}")

    assert run_step("train", StepArgumentParser(prog="p"), body, []) == 1
    out, err = capsys.readouterr()
    written = termination_log.read_text(encoding="utf-8")
    for text in (out, err, written):
        assert "hunter2" not in text and "abc" not in text, text
    assert "https://***@mlflow.example.com/api?token=***" in err
    assert "https://***@mlflow.example.com" in out
