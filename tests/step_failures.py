"""The one check of how a step fails: exit code, one stderr line naming what is wrong, and no
return.json left behind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

StepMain = Callable[[Sequence[str] | None], int]


def assert_step_fails(
    main: StepMain,
    step: str,
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    xcom: Path,
    *needles: str,
    rc: int = 1,
) -> str:
    """Run ``main(argv)`` and return its one stderr line, after checking every expectation."""
    capsys.readouterr()  # drop what earlier steps of this test printed
    assert main(argv) == rc
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"stderr is not one line: {err!r}"
    line = lines[0]
    assert line.startswith(f"{step} failed: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert not xcom.exists()
    return line
