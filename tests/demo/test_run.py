"""The main job (python -m demo) on a tiny dataset: every step runs as its own process."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.run import main
from demo.sample_data import generate


@pytest.mark.integration
@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_and_deploys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "demo"
    assert main(["--home", str(home), "--rows", "3000", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "<- best" in out
    assert "Deployed: demo-classifier v1 is now @champion (previous: None)" in out
    runs = list((home / "runs").iterdir())
    assert len(runs) == 1
    steps = {p.name for p in runs[0].iterdir()}
    assert {"validate", "preprocess", "evaluate", "deploy", "train-0", "train-3"} <= steps
    assert all((runs[0] / s / "xcom" / "return.json").is_file() for s in steps)


def test_sample_data_is_deterministic_with_missing_values() -> None:
    first, second = generate(500, seed=3), generate(500, seed=3)
    assert first.equals(second)
    assert not first.equals(generate(500, seed=4))
    assert first.isna().any().any()
    assert set(first["default"]) == {"yes", "no"}
