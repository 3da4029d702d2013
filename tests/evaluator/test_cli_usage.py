"""The evaluator's flags: a value out of its range (NaN and infinity included, a bootstrap too
large to hold in memory, a seed numpy refuses) is a usage error naming the flag, exit 2, found
before MLflow is reached or any file is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.step import UsageError
from evaluator.cli import build_parser, main, resolve
from evaluator.job import EvaluateConfig

REQUIRED = ["--run-id", "r", "--data-path", "d", "--model-name", "m"]
MAX_BOOTSTRAP_SAMPLES = 1_000_000  # the --help says so


def config(*flags: str) -> EvaluateConfig:
    return resolve(build_parser().parse_args([*REQUIRED, *flags]))


def float_flags() -> list[str]:
    return [a.option_strings[0] for a in build_parser()._actions if a.type is float]


def test_the_float_flags_are_the_gate_and_the_interval() -> None:
    assert sorted(float_flags()) == [
        "--calibration-tolerance",
        "--confidence",
        "--min-accuracy",
        "--min-improvement",
        "--min-r2",
        "--slice-tolerance",
    ]


@pytest.mark.parametrize("flag", float_flags())
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_every_float_flag_refuses_nan_and_infinity(flag: str, value: str) -> None:
    with pytest.raises(UsageError, match=f"^{flag} {value.replace('1e999', 'inf')} is out of"):
        config(f"{flag}={value}")  # "-inf" would read as a flag


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--bootstrap-samples", str(MAX_BOOTSTRAP_SAMPLES + 1)],
            f"--bootstrap-samples {MAX_BOOTSTRAP_SAMPLES + 1} is out of range",
        ),
        (["--bootstrap-samples", "0"], "--bootstrap-samples 0 is out of range"),
        (["--bootstrap-seed", "-1"], "--bootstrap-seed -1 is out of range"),
        (["--min-slice-size", "0"], "--min-slice-size 0 is out of range"),
    ],
)
def test_counts_out_of_range_are_refused(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=f"^{message}"):
        config(*flags)


def test_the_bootstrap_bounds_are_documented_and_accepted() -> None:
    (samples,) = [a for a in build_parser()._actions if a.dest == "bootstrap_samples"]
    assert f"1 to {MAX_BOOTSTRAP_SAMPLES}" in (samples.help or "")
    resolved = config("--bootstrap-samples", str(MAX_BOOTSTRAP_SAMPLES), "--bootstrap-seed", "0")
    assert resolved.bootstrap_samples == MAX_BOOTSTRAP_SAMPLES


@pytest.mark.parametrize(
    "flags", [["--confidence", "nan"], ["--min-accuracy", "2"], ["--bootstrap-seed", "-5"]]
)
def test_a_value_out_of_range_exits_2_before_anything_is_touched(
    flags: list[str], isolated_env: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(isolated_env.rglob("*"))
    assert main([*REQUIRED, *flags]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"evaluate failed: {flags[0]} ")
    assert sorted(isolated_env.rglob("*")) == before  # no MLflow store, no result
