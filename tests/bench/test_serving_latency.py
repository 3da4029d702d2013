"""bench.serving_latency: its flags, its table, and one tiny real run of both scoring servers
(the JSON's shape is checked, never the timings)."""

from __future__ import annotations

import json

import pytest

from bench.serving_latency import BATCHES, MODELS, main, markdown, parse_args


def test_quick_is_small_data_and_few_requests() -> None:
    args = parse_args(["--quick"])
    assert (args.rows, args.requests_1, args.requests_1000) == (3000, 3, 2)


def test_a_count_below_one_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--requests-1000", "0"])
    assert exc.value.code == 2
    assert "--requests-1000 must be at least 1" in capsys.readouterr().err


def test_table_has_a_row_per_batch_size_and_the_ratio() -> None:
    cell = {"p50_ms": 10.0, "p99_ms": 20.0, "requests": 5}
    report = {"latency": {"ours": {"1": cell, "1000": cell}, "hgb": {"1": cell, "1000": cell}}}
    lines = markdown(report).splitlines()
    assert lines[2] == "| 1 | 10.0 ms | 20.0 ms | 10.0 ms | 20.0 ms | 1.00x |"
    assert lines[3].startswith("| 1,000 |")


@pytest.mark.slow
@pytest.mark.integration
def test_a_tiny_run_reports_every_model_and_batch_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--quick", "--requests-1", "2", "--requests-1000", "1", "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert set(report) == {"date", "machine", "rows", "epochs", "latency"}
    assert set(report["latency"]) == set(MODELS)
    for model in MODELS:
        assert set(report["latency"][model]) == {str(b) for b in BATCHES}
        for batch, requests in (("1", 2), ("1000", 1)):
            cell = report["latency"][model][batch]
            assert cell["requests"] == requests
            assert 0 < cell["p50_ms"] <= cell["p99_ms"]
