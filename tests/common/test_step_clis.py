"""Every step's command line, as a newcomer meets it: ``--help`` builds the parser without the
heavy libraries (the job is imported once the flags are parsed), and the help it prints is
honest: no ``(default: None)``, metavars that say what a value is, flags in titled groups, no
reST markup, and the command in the usage line as it was typed."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.step import StepHelpFormatter, plain_text

REPO = Path(__file__).resolve().parents[2]
STEPS = ["validator", "preprocess", "trainer", "evaluator", "deployer", "scorer"]
HEAVY = ("torch", "mlflow", "pandas", "numpy", "sklearn")
SCRIPTS = {
    "validator": "tabular-validate",
    "preprocess": "tabular-preprocess",
    "trainer": "tabular-train",
    "evaluator": "tabular-evaluate",
    "deployer": "tabular-deploy",
    "scorer": "tabular-score",
}
IMPORT_CHECK = """
import importlib, json, sys
cli = importlib.import_module(sys.argv[1] + ".cli")
cli.build_parser().format_help()
print(json.dumps(sorted(m for m in sys.argv[2:] if m in sys.modules)))
"""


def run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``argv`` in a fresh process from the repository root (a step removes a stale result at
    $XCOM_RETURN_PATH before parsing: it points into ``tmp_path``)."""
    env = {"PATH": "/usr/bin:/bin", "XCOM_RETURN_PATH": str(tmp_path / "return.json")}
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=False)


@pytest.mark.parametrize("step", STEPS)
def test_the_command_line_imports_no_heavy_library(step: str, tmp_path: Path) -> None:
    done = run([sys.executable, "-c", IMPORT_CHECK, step, *HEAVY], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def entries(help_text: str) -> dict[str, str]:
    """{first option string: its entry (head line and help, on one line)} of a help text."""
    found: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        if re.match(r"^  -", line):
            current = line.split()[0].rstrip(",")
            found[current] = line.strip()
        elif current and line.startswith("    "):
            found[current] += " " + line.strip()
        else:
            current = None
    return found


def sections(help_text: str) -> dict[str, list[str]]:
    """{section title: the first option string of each entry in it} of a help text."""
    found: dict[str, list[str]] = {}
    title = None
    for line in help_text.splitlines():
        if re.match(r"^\S.*:$", line) and not line.startswith("usage:"):
            title = line[:-1]
            found[title] = []
        elif title is not None and re.match(r"^  -", line):
            found[title].append(line.split()[0].rstrip(","))
    return found


def parser_of(step: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = importlib.import_module(f"{step}.cli").build_parser()
    return parser


@pytest.mark.parametrize("step", STEPS)
def test_help_shows_no_default_where_there_is_none(step: str) -> None:
    parser = parser_of(step)
    text = parser.format_help()
    assert "(default: None)" not in text
    assert "(default: [])" not in text
    found = entries(text)
    for action in parser._actions:
        if action.required:
            assert "(default:" not in found[action.option_strings[0]], action.option_strings


@pytest.mark.parametrize("step", STEPS)
def test_every_value_has_a_metavar_that_says_what_it_is(step: str) -> None:
    parser = parser_of(step)
    found = entries(parser.format_help())
    for action in parser._actions:
        if action.nargs == 0 or not action.option_strings:
            continue
        flag = action.option_strings[0]
        # Chosen for the flag (argparse's own is the flag's name in capitals: --data-path
        # DATA_PATH), or the choices themselves.
        assert action.metavar is not None or action.choices is not None, flag
        shown = found[flag].split()[1]  # "--data-path URI ..."
        expected = action.metavar or "{" + ",".join(map(str, action.choices or ())) + "}"
        assert shown == expected, flag


@pytest.mark.parametrize("step", STEPS)
def test_flags_are_in_titled_groups_and_help_has_no_rest_markup(step: str) -> None:
    text = parser_of(step).format_help()
    assert "``" not in text
    groups = sections(text)
    assert groups.pop("options") == ["-h"]
    assert len(groups) >= 2
    assert all(groups.values())


@pytest.mark.parametrize("step", STEPS)
def test_usage_names_the_command_as_typed(step: str, tmp_path: Path) -> None:
    module = run([sys.executable, "-m", step, "--help"], tmp_path)
    assert module.returncode == 0, module.stderr
    assert module.stdout.startswith(f"usage: python -m {step} ")
    script = Path(sys.executable).parent / SCRIPTS[step]
    if not script.is_file():
        pytest.skip(f"{script.name} is not installed (pip install -e .)")
    typed = run([str(script), "--help"], tmp_path)
    assert typed.returncode == 0, typed.stderr
    assert typed.stdout.startswith(f"usage: {SCRIPTS[step]} ")


def test_a_console_scripts_usage_error_names_the_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "tabular-train"
    if not script.is_file():
        pytest.skip("tabular-train is not installed (pip install -e .)")
    done = run([str(script), "--experiment-name", "x"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("train failed: tabular-train: the following arguments are")


def test_the_formatter_tells_defaults_only_where_there_is_one() -> None:
    p = argparse.ArgumentParser(prog="x", formatter_class=StepHelpFormatter)
    p.add_argument("--need", required=True, metavar="URI", help="needed")
    p.add_argument("--maybe", metavar="URI", help="optional, no default")
    p.add_argument("--many", action="append", default=[], metavar="KEY", help="repeatable")
    p.add_argument("--switch", action="store_true", help="a switch")
    p.add_argument("--count", type=int, default=0, metavar="N", help="a count")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True, help="plots")
    found = entries(p.format_help())
    for flag in ("--need", "--maybe", "--many", "--switch"):
        assert "(default" not in found[flag], flag
    assert found["--count"].endswith("a count (default: 0)")  # 0 is a default, not "none"
    assert found["--plots"].endswith("plots (default: True)")


def test_plain_text_drops_rest_double_backticks() -> None:
    assert plain_text("``python -m x``: does ``y``") == "python -m x: does y"
    assert plain_text(None) is None
