"""How long ``--help`` takes for every step: ``python -m <step> --help`` and the step's console
script (``tabular-train --help``, ...), each a fresh process, against the interpreter's own start
(``python -c pass``) measured in the same run.

A step's ``--help`` builds its parser and nothing more: the job (torch, MLflow, pandas, ...) is
imported only after the flags are parsed. Goal: under a second for every command. Each command
runs ``--repeats`` times; the table shows the median and the fastest run, and the median over
the interpreter's start. The console scripts are those of ``[project.scripts]`` in
pyproject.toml that are installed beside this interpreter (``pip install -e .`` installs them);
a step without one is listed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STEPS = ("validator", "preprocess", "trainer", "evaluator", "deployer", "scorer")
GOAL_S = 1.0


def steps() -> list[str]:
    """The step packages of this checkout (those with a ``cli.py``)."""
    return [step for step in STEPS if (REPO / step / "cli.py").is_file()]


def console_scripts() -> dict[str, str]:
    """{script name: step package} of the installed console scripts that run a step's
    ``cli`` (the ``[project.scripts]`` of pyproject.toml, as ``pip install -e .`` installed
    them)."""
    found = {}
    for entry in entry_points(group="console_scripts"):
        package, _, rest = entry.value.partition(".")
        if package in STEPS and rest.startswith("cli:"):
            found[entry.name] = package
    return found


def commands() -> tuple[dict[str, list[str]], list[str]]:
    """{label: argv} of every command timed, the baseline first; and the steps that have no
    console script installed beside this interpreter."""
    timed = {"python -c pass (baseline)": [sys.executable, "-c", "pass"]}
    for step in steps():
        timed[f"python -m {step} --help"] = [sys.executable, "-m", step, "--help"]
    scripts = {
        script: step
        for script, step in console_scripts().items()
        if (Path(sys.executable).parent / script).is_file()
    }
    for script, step in scripts.items():
        if step in steps():
            timed[f"{script} --help"] = [str(Path(sys.executable).parent / script), "--help"]
    missing = [step for step in steps() if step not in scripts.values()]
    return timed, missing


def run_once(argv: list[str], env: dict[str, str]) -> float:
    """Seconds one run of ``argv`` took; SystemExit when it fails or prints no usage line."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or ("--help" in argv and "usage:" not in done.stdout):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def measure(repeats: int) -> dict[str, Any]:
    """Each command's median and fastest time over ``repeats`` runs, interleaved (one round
    runs every command once) so that a busy moment of the machine hits all of them alike."""
    timed, missing = commands()
    with tempfile.TemporaryDirectory(prefix="bench-help-") as folder:
        # A step removes a stale result at $XCOM_RETURN_PATH before parsing: point it here.
        env = {**os.environ, "XCOM_RETURN_PATH": str(Path(folder) / "return.json")}
        times: dict[str, list[float]] = {label: [] for label in timed}
        for _ in range(repeats):
            for label, argv in timed.items():
                times[label].append(run_once(argv, env))
    baseline = statistics.median(next(iter(times.values())))
    rows = {
        label: {
            "median_s": statistics.median(values),
            "min_s": min(values),
            "over_baseline_s": statistics.median(values) - baseline,
        }
        for label, values in times.items()
    }
    slowest = max(row["median_s"] for label, row in rows.items() if "--help" in label)
    return {
        "repeats": repeats,
        "baseline_s": baseline,
        "commands": rows,
        "no_console_script": missing,
        "goal": {"max_median_s": GOAL_S, "slowest_s": slowest, "met": slowest < GOAL_S},
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{'command':<36} {'median':>8} {'fastest':>8} {'over start':>11}")
    for label, row in result["commands"].items():
        print(
            f"{label:<36} {row['median_s']:>7.3f}s {row['min_s']:>7.3f}s "
            f"{row['over_baseline_s']:>+10.3f}s"
        )
    if result["no_console_script"]:
        print(f"no console script installed for: {', '.join(result['no_console_script'])}")
    goal = result["goal"]
    print(
        f"goal: every --help under {goal['max_median_s']:g} s (median), slowest "
        f"{goal['slowest_s']:.3f} s: " + ("met" if goal["met"] else "NOT met")
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.help_time",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--repeats", type=int, default=5, metavar="N", help="runs of each command (default: 5)"
    )
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    result = measure(args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
