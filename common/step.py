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

from common.redaction import RedactingFilter, redact_uri
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


# The loggers MLflow configures when it is imported, and the least level each keeps here (its
# store's SQL and migrations are noise at INFO).
MLFLOW_LOGGERS = {
    "mlflow": logging.NOTSET,
    "sqlalchemy.engine": logging.WARNING,
    "alembic": logging.WARNING,
    "huey": logging.WARNING,
}


def configure_logging() -> None:
    """Log records of every module, MLflow's included, to stdout at ``$LOG_LEVEL`` (default
    INFO), credentials in URIs masked: stderr holds only a failed step's reason line."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    if not isinstance(logging.getLevelName(level), int):
        raise UsageError(f"LOG_LEVEL={level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    route_mlflow_logging()


def route_mlflow_logging() -> None:
    """Send MLflow's log records through the root logger (stdout) instead of the stderr handler
    it gives its own loggers when imported: both after an import (the handler is removed) and
    before one (``MLFLOW_CONFIGURE_LOGGING=false`` tells it not to add the handler)."""
    os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"
    for name, least in MLFLOW_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(least)


def one_line(message: str) -> str:
    return " ".join(message.split()) or "failed without a message"


def report_failure(step: str, message: str) -> None:
    """Print the reason on stderr and, where Kubernetes provides one, in the termination log."""
    line = f"{step} failed: {one_line(redact_uri(message))}"
    print(line, file=sys.stderr, flush=True)
    termination_log = Path(os.environ.get("TERMINATION_LOG_PATH", TERMINATION_LOG))
    if termination_log.exists():
        try:
            termination_log.write_text(line[:4096] + "\n", encoding="utf-8")
        except OSError:
            log.warning("could not write %s", termination_log)


def remove_stale_result() -> None:
    """Remove a result an earlier attempt left, so that it is never mistaken for this one's; a
    StepError naming ``$XCOM_RETURN_PATH`` when that cannot be done (a folder there, no
    permission), so that the step fails before it does any work."""
    path = xcom_path()
    if path.is_dir():
        raise StepError(f"XCOM_RETURN_PATH {path}: is a folder, not the result file's path")
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise StepError(
            f"XCOM_RETURN_PATH {path}: cannot remove an earlier result ({exc})"
        ) from exc


def run_step(
    step: str,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], StepResult | None],
    argv: Sequence[str] | None,
) -> int:
    """Run one step and return its exit code (0 only when a valid result was written, or when
    ``body`` returns None: a helper process, such as a data-parallel rank other than 0, whose
    result rank 0 writes)."""
    try:
        remove_stale_result()
        configure_logging()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except StepError as exc:  # a usage error (exit 2) or an unusable result path (exit 1)
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
