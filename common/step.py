"""The one way a step runs: parse flags, do the work, write the result, or fail with a one-line
reason on stderr (and in the Kubernetes termination log) and no return.json."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from common.redaction import RedactingFilter, redact_uri

if TYPE_CHECKING:
    from contract.results import StepResult

log = logging.getLogger(__name__)

TERMINATION_LOG = "/dev/termination-log"


class StepError(Exception):
    """A failure with a message a person can act on (names the file, column or flag)."""

    exit_code = 1  # the process's exit status when this error ends the step


class UsageError(StepError):
    """Bad command-line flags: a flag's value out of range, or flags that contradict each
    other (exit status 2, as argparse gives for a flag it cannot parse)."""

    exit_code = 2


class StepHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in ``--help`` only where there is one to tell: not for a required flag, a flag
    whose absence means "not given" (None), a repeatable flag that starts empty, or a switch."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        switch = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        nothing = action.default is None or action.default == []
        if action.required or switch or nothing:
            return action.help
        return super()._get_help_string(action)


def plain_text(text: str | None) -> str | None:
    """``text`` (a module docstring used as a description) without reST's double backticks,
    which ``--help`` would print as they are."""
    return None if text is None else text.replace("``", "")


def script_name() -> str:
    """The name this process was started by (``tabular-train`` for the console script), for
    the usage line of a step started by its console script."""
    return Path(sys.argv[0]).name


class StepArgumentParser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of exiting, so usage errors are reported
    like every other failure; its help shows the defaults worth telling and no reST markup."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", StepHelpFormatter)
        kwargs["description"] = plain_text(kwargs.get("description"))  # type: ignore[arg-type]
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
    from contract.xcom import xcom_path  # pydantic and jsonschema: not needed for --help

    path = xcom_path()
    if path.is_dir():
        raise StepError(f"XCOM_RETURN_PATH {path}: is a folder, not the result file's path")
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise StepError(
            f"XCOM_RETURN_PATH {path}: cannot remove an earlier result ({exc})"
        ) from exc


def fail_before_start(step: str, error: StepError) -> int:
    """Report ``error`` (bad flags or settings) and return its exit code, after removing a
    result an earlier attempt left; an unusable result path is reported instead, as it would
    fail the step whatever its flags."""
    try:
        remove_stale_result()
    except StepError as unusable:
        error = unusable
    report_failure(step, str(error))
    return error.exit_code


def run_step(
    step: str,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], StepResult | None],
    argv: Sequence[str] | None,
) -> int:
    """Run one step and return its exit code (0 only when a valid result was written, or when
    ``body`` returns None: a helper process, such as a data-parallel rank other than 0, whose
    result rank 0 writes). ``--help`` only prints the help: the result's contract (pydantic,
    jsonschema) is imported once the flags are parsed, so the help comes quickly."""
    try:
        configure_logging()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except StepError as exc:  # a usage error (exit 2)
        return fail_before_start(step, exc)
    try:
        remove_stale_result()
    except StepError as exc:  # an unusable result path (exit 1)
        report_failure(step, str(exc))
        return exc.exit_code
    from contract.xcom import write_result

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
