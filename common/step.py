"""The one way a step runs: parse flags, do the work, write the result, or fail with a one-line
reason on stderr (and in the Kubernetes termination log) and no return.json."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from contract.results import StepResult
from contract.xcom import write_result, xcom_path

log = logging.getLogger(__name__)

TERMINATION_LOG = "/dev/termination-log"


class StepError(Exception):
    """A failure with a message a person can act on (names the file, column or flag)."""

    exit_code = 1  # the process's exit status when this error ends the step


class UsageError(StepError):
    """Bad command-line flags: a flag's value out of range, or flags that contradict each
    other (exit status 2, as argparse gives for a flag it cannot parse)."""

    exit_code = 2


class StepArgumentParser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of exiting, so usage errors are reported
    like every other failure."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def configure_logging() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        raise UsageError(f"LOG_LEVEL={level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )


def one_line(message: str) -> str:
    return " ".join(message.split()) or "failed without a message"


def report_failure(step: str, message: str) -> None:
    """Print the reason on stderr and, where Kubernetes provides one, in the termination log."""
    line = f"{step} failed: {one_line(message)}"
    print(line, file=sys.stderr, flush=True)
    termination_log = Path(os.environ.get("TERMINATION_LOG_PATH", TERMINATION_LOG))
    if termination_log.exists():
        try:
            termination_log.write_text(line[:4096] + "\n", encoding="utf-8")
        except OSError:
            log.warning("could not write %s", termination_log)


def run_step(
    step: str,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], StepResult | None],
    argv: Sequence[str] | None,
) -> int:
    """Run one step and return its exit code (0 only when a valid result was written, or when
    ``body`` returns None: a helper process, such as a data-parallel rank other than 0, whose
    result rank 0 writes)."""
    # A result left by an earlier attempt must never be mistaken for this one's.
    xcom_path().unlink(missing_ok=True)
    try:
        configure_logging()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except UsageError as exc:
        report_failure(step, str(exc))
        return exc.exit_code
    try:
        result = body(args)
        if result is None:
            log.info("%s: this process has no result to write", step)
            return 0
        path = write_result(result)
    except StepError as exc:
        report_failure(step, str(exc))
        return exc.exit_code
    except Exception as exc:
        log.exception("%s crashed", step)
        report_failure(step, f"{type(exc).__name__}: {exc}")
        return 1
    log.info("%s result written to %s", step, path)
    return 0
