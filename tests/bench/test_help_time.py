"""bench.help_time: every step's ``--help`` (module and console script) is timed against the
interpreter's start, and a failing command stops the benchmark instead of being timed."""

from __future__ import annotations

import json
import sys

import pytest

from bench.help_time import commands, console_scripts, main, run_once, steps


def test_every_step_and_its_console_script_is_timed_after_the_baseline() -> None:
    timed, missing = commands()
    labels = list(timed)
    assert labels[0] == "python -c pass (baseline)"
    assert {"validator", "preprocess", "trainer", "evaluator", "deployer"} <= set(steps())
    for step in steps():
        assert f"python -m {step} --help" in labels
    scripts = console_scripts()
    assert scripts["tabular-train"] == "trainer"
    for script, step in scripts.items():
        assert f"{script} --help" in labels
        assert step not in missing
    assert set(missing) == set(steps()) - set(scripts.values())


def test_a_failing_command_stops_the_benchmark() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    with pytest.raises(SystemExit, match=r"failed \(3\)"):
        run_once([sys.executable, "-c", "raise SystemExit(3)"], env)
    with pytest.raises(SystemExit, match=r"failed \(0\)"):  # --help that prints no usage
        run_once([sys.executable, "-c", "pass", "--help"], env)
    assert run_once([sys.executable, "-c", "pass"], env) > 0


def test_one_round_reports_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["commands"]
    assert set(rows) == set(commands()[0])
    assert report["baseline_s"] == rows["python -c pass (baseline)"]["median_s"] > 0
    for row in rows.values():
        assert row["min_s"] == row["median_s"] > 0  # one run each
        assert row["over_baseline_s"] == pytest.approx(row["median_s"] - report["baseline_s"])
    assert report["goal"]["slowest_s"] == max(
        row["median_s"] for label, row in rows.items() if "--help" in label
    )
