"""bench.batch_scoring in tiny mode: both contenders run through their real code paths, both ways
of loading the model are timed, and the JSON report has the shape docs/BENCHMARKS.md quotes."""

from __future__ import annotations

import json

import pytest

from bench import batch_scoring

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_tiny_run_reports_rows_per_second_and_peak_memory_of_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--rows", "300", "--batch-rows", "100", "--load-repeats", "3", "--json"]
    assert batch_scoring.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["rows"], result["batch_rows"]) == (300, 100)
    assert set(result["runs"]) == {"scorer", "whole-frame"}
    for run in result["runs"].values():
        assert run["work_s"] > 0 and run["wall_s"] >= run["work_s"]
        assert run["peak_rss_bytes"] > 0
        assert run["rows_per_s"] == pytest.approx(300 / run["work_s"])
    assert set(result["scorer_over_whole_frame"]) == {"rows_per_s", "peak_rss"}
    load = result["load"]
    assert load["repeats"] == 3 and load["model_bytes"] > 0
    for name in ("plain", "verified"):
        times = load["all_s"][name]
        assert len(times) == 3 and min(times) > 0
        assert load["median_s"][name] == pytest.approx(sorted(times)[1])
    ratio = load["median_s"]["verified"] / load["median_s"]["plain"]
    assert load["verified_over_plain"] == pytest.approx(ratio)
    assert len(result["machine"]["load_average"]) == 3


def test_no_load_repeats_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        batch_scoring.main(["--load-repeats", "0"])
    assert exited.value.code == 2
    assert "--load-repeats: expected 1 or more" in capsys.readouterr().err
