"""bench.batch_scoring in tiny mode: both contenders run through their real code paths and the
JSON report has the shape docs/BENCHMARKS.md quotes."""

from __future__ import annotations

import json

import pytest

from bench import batch_scoring

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_tiny_run_reports_rows_per_second_and_peak_memory_of_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert batch_scoring.main(["--rows", "300", "--batch-rows", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["rows"], result["batch_rows"]) == (300, 100)
    assert set(result["runs"]) == {"scorer", "whole-frame"}
    for run in result["runs"].values():
        assert run["work_s"] > 0 and run["wall_s"] >= run["work_s"]
        assert run["peak_rss_bytes"] > 0
        assert run["rows_per_s"] == pytest.approx(300 / run["work_s"])
    assert set(result["scorer_over_whole_frame"]) == {"rows_per_s", "peak_rss"}
