"""The deployer's flag combinations: a deploy without --run-id and a rollback given a flag it
does not use are usage errors naming the flags (exit 2), found before MLflow is reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.cli import main


@pytest.fixture
def untouched(isolated_env: Path) -> list[Path]:
    """What the test's folder holds before the step runs: a refused step adds nothing."""
    return sorted(isolated_env.rglob("*"))


def test_a_deploy_without_run_id_exits_2(
    untouched: list[Path], isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--model-name", "m"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "deploy failed: --run-id is required unless --rollback is given"
    ]
    assert sorted(isolated_env.rglob("*")) == untouched  # no MLflow store, no result


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--run-id", "abc"], "--run-id"),
        (["--expected-champion-version", "3"], "--expected-champion-version"),
        (["--expected-champion-version", "none"], "--expected-champion-version"),
        (["--data-path", "s3://b/processed"], "--data-path"),
        (["--force"], "--force"),
        (["--tag", "ticket=OPS-1", "--tag", "by=me"], "--tag"),
        (["--run-id", "abc", "--force"], "--run-id, --force"),
    ],
)
def test_a_rollback_refuses_the_flags_of_a_deploy(
    flags: list[str],
    named: str,
    untouched: list[Path],
    isolated_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--rollback", "--model-name", "m", *flags]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"deploy failed: --rollback does not use {named} (a rollback swaps champion and "
        "previous_champion of --model-name)"
    )
    assert sorted(isolated_env.rglob("*")) == untouched
