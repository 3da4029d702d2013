"""``python -m scorer.serve --model models:/NAME@ALIAS``: serve a registered model over HTTP
(``/invocations``, ``/ping``) with MLflow's own scoring app, from a local copy whose every file
matched the model's integrity record. The check runs before any of the model's code is imported,
and the server is then started on that very copy (uvicorn replaces this process and loads the
model in each worker), so a model changed in the artifact store is refused and never runs.
``/invocations`` takes MLflow's JSON bodies and CSV bodies (``text/csv``: a header line, then
rows), the latter read by ``scorer.app``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common.step import StepArgumentParser, StepError, configure_logging, report_failure
from scorer.app import MODEL_DIR_ENV

log = logging.getLogger(__name__)

STEP = "serve"


def port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return int(text)


def workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    from scorer.cli import add_model_flag

    p = StepArgumentParser(prog="python -m scorer.serve", description=__doc__)
    add_model_flag(p)
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help="address to listen on")
    p.add_argument("--port", type=port, default=5001, metavar="PORT", help="port to listen on")
    p.add_argument(
        "--workers", type=workers, default=1, metavar="N", help="server worker processes"
    )
    return p


def verified_copy(model: str) -> Path:
    """The model's verified local directory, in a folder of its own that the server keeps
    using (it is not removed: this process becomes the server)."""
    from common.tracking import configure_mlflow, first_line, is_unreachable, reaching_mlflow
    from tabular_model.integrity import ModelIntegrityError, verified_local_copy

    configure_mlflow()
    folder = Path(tempfile.mkdtemp(prefix="scorer-serve-"))
    with reaching_mlflow():
        try:
            return verified_local_copy(model, folder / "model")
        except ModelIntegrityError as exc:
            raise StepError(f"--model {model} failed its integrity check: {exc}") from exc
        except Exception as exc:
            if is_unreachable(exc):
                raise
            raise StepError(f"--model {model}: cannot download it: {first_line(exc)}") from exc


def server_command(args: argparse.Namespace) -> list[str]:
    """uvicorn (installed beside this interpreter) on ``scorer.app``'s factory, as ``mlflow
    models serve --env-manager local`` runs it on MLflow's app: each worker builds the app and
    loads the model named by the environment (``scorer.app.MODEL_DIR_ENV``)."""
    package_root = Path(__file__).resolve().parents[1]  # where ``scorer`` is imported from
    return [
        sys.executable, "-m", "uvicorn", "--factory", "scorer.app:create_app",
        "--app-dir", str(package_root),
        "--host", args.host, "--port", str(args.port), "--workers", str(args.workers),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Verify, then replace this process with the server; returns only on failure."""
    try:
        configure_logging()
        args = build_parser().parse_args(argv)
        local = verified_copy(args.model)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except StepError as exc:
        report_failure(STEP, str(exc))
        return exc.exit_code
    command = server_command(args)
    log.info("serving %s (verified copy %s) on %s:%d", args.model, local, args.host, args.port)
    sys.stdout.flush()
    os.environ[MODEL_DIR_ENV] = str(local)  # the server's environment: this process becomes it
    os.execv(command[0], command)
    return 1  # not reached: execv returns only by raising


if __name__ == "__main__":
    sys.exit(main())
