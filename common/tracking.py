"""Where MLflow lives: ``MLFLOW_TRACKING_URI`` when set (a server in the cluster), otherwise an
embedded sqlite store and local artifact folder under ``$PIPELINE_HOME`` (no server needed)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.redaction import RedactingFilter, redact_uri
from common.step import StepError

DEFAULT_PIPELINE_HOME = ".pipeline"

# MLflow's own HTTP retry defaults (7 retries, backoff factor 2, 120 s timeout) keep a pod
# waiting for many minutes on a server that is down or hangs. These bound one request with all
# its retries to 57 s (see request_bound_seconds); a server's Retry-After header could stretch
# that, so it is not obeyed. MLflow would print each run's URL, the tracking URI's credentials
# included, when the run ends. Artifact progress bars would break the one-line failure message
# on stderr. The environment still wins, so an operator can change any of them.
MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "8",
    "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
URLLIB3_BACKOFF_MAX = 120.0  # seconds: urllib3 never sleeps longer between two attempts

# Loggers of the HTTP client under MLflow: a retry's warning quotes the request's URL.
CLIENT_LOGGERS = ("urllib3.connectionpool",)


def pipeline_home() -> Path:
    """Root for local state of the embedded default (MLflow store, default outputs)."""
    return Path(os.environ.get("PIPELINE_HOME", DEFAULT_PIPELINE_HOME)).resolve()


def embedded_store() -> tuple[str, Path]:
    """The sqlite tracking URI and artifact folder of the embedded default."""
    root = pipeline_home() / "mlflow"
    return f"sqlite:///{root / 'mlflow.db'}", root / "artifacts"


def tracking_uri() -> str:
    """The tracking URI as MLflow needs it, credentials included: never put it in a message
    (``shown_tracking_uri`` is for that)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or embedded_store()[0]


def shown_tracking_uri() -> str:
    """The tracking URI as messages and logs show it: credentials masked."""
    return redact_uri(tracking_uri())


def _setting(name: str) -> float:
    """The number in environment variable ``name`` (its default when unset)."""
    value = os.environ.get(name, MLFLOW_ENV_DEFAULTS[name])
    try:
        return float(value)
    except ValueError:
        raise StepError(f"{name}={value!r} is not a number") from None


def request_bound_seconds() -> float:
    """The longest one MLflow request, all its retries included, takes against a server that
    accepts and never answers (or never accepts): each of the 1 + MAX_RETRIES attempts waits
    out MLFLOW_HTTP_REQUEST_TIMEOUT, and between attempts urllib3 sleeps nothing before the
    first retry, then BACKOFF_FACTOR x 2, 4, 8, ... s plus up to BACKOFF_JITTER s. Read from the
    environment, with MLFLOW_ENV_DEFAULTS where unset (57 s)."""
    retries = int(_setting("MLFLOW_HTTP_REQUEST_MAX_RETRIES"))
    factor = _setting("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")
    jitter = _setting("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER")
    sleeps = [min(URLLIB3_BACKOFF_MAX, factor * 2**k + jitter) for k in range(1, retries)]
    return (retries + 1) * _setting("MLFLOW_HTTP_REQUEST_TIMEOUT") + sum(sleeps)


def configure_mlflow() -> Any:
    """Point MLflow at the tracking URI and return the ``mlflow`` module (imported lazily)."""
    import mlflow

    # Creating or migrating the embedded store logs at INFO on stderr, which holds only a
    # failed step's reason line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    for name in CLIENT_LOGGERS:
        client_log = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in client_log.filters):
            client_log.addFilter(RedactingFilter())
    for name, value in MLFLOW_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow


SERVER_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")


def has_artifact_server(uri: str) -> bool:
    """Whether tracking URI ``uri`` is a server, which chooses the artifact root of the
    experiments it creates (a database or file store has nobody to choose)."""
    return uri.split(":", 1)[0].lower() in SERVER_SCHEMES


def ensure_experiment(name: str) -> str:
    """Return the id of experiment ``name``, creating it if needed: with the artifact folder
    of the embedded store when no server stands behind the tracking URI."""
    mlflow = configure_mlflow()
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None and experiment.lifecycle_stage == "deleted":
        raise StepError(
            f"MLflow experiment {name!r} at {shown_tracking_uri()} is deleted; restore it or pick "
            "another --experiment-name"
        )
    if experiment is not None:
        return str(experiment.experiment_id)
    artifact_location = None
    if not has_artifact_server(tracking_uri()):
        # Without a server nobody else decides where artifacts go, and MLflow's default is
        # ./mlruns of the working directory (the embedded store, or a database URI in
        # MLFLOW_TRACKING_URI): keep them under $PIPELINE_HOME/mlflow instead.
        folder = embedded_store()[1]
        folder.mkdir(parents=True, exist_ok=True)
        artifact_location = folder.as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except Exception:
        # Another sweep member created it between our lookup and create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


IMAGE_ENV = "TABULAR_PIPELINE_IMAGE"  # the container image, set on every pod by the DAG


def image() -> str | None:
    """The container image this step runs in, when the environment says (tags runs and
    model versions)."""
    return os.environ.get(IMAGE_ENV) or None


CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"


def is_not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def run_model_uri(run_id: str, model_name_in_run: str = "model") -> str:
    """The ``models:/<id>`` URI of the model logged by run ``run_id`` (``logged_model_uri``); a
    clear error when the run or its model does not exist."""
    model_uri = logged_model_uri(run_id, model_name_in_run)
    if model_uri is None:
        raise StepError(f"--run-id {run_id}: the run logged no model named {model_name_in_run!r}")
    return model_uri


def logged_model_uri(run_id: str, model_name_in_run: str = "model") -> str | None:
    """The ``models:/<id>`` URI of the one finished (READY) model named ``model_name_in_run``
    that run ``run_id`` logged, or None when it logged none (a model whose logging failed or
    was cut off does not count). A StepError when the run does not exist, when the server
    cannot be reached, or when the run holds more than one such model (which one is meant is
    then anyone's guess)."""
    from mlflow.entities import LoggedModelStatus

    mlflow = configure_mlflow()
    with reaching_mlflow():
        try:
            run = mlflow.MlflowClient().get_run(run_id)
        except Exception as exc:
            if is_not_found(exc):
                where = shown_tracking_uri()
                raise StepError(f"--run-id {run_id}: no such run at {where}") from exc
            raise
        found = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{model_name_in_run}'",
            output_format="list",
        )
    ready = sorted(
        (m for m in found if m.status == LoggedModelStatus.READY),
        key=lambda m: (m.creation_timestamp, m.model_id),
    )
    if len(ready) > 1:
        raise StepError(
            f"run {run_id} holds {len(ready)} finished models named {model_name_in_run!r} "
            f"({', '.join(m.model_id for m in ready)}); delete all but the one meant "
            "(MlflowClient().delete_logged_model) and run this again"
        )
    return f"models:/{ready[0].model_id}" if ready else None


def alias_version(model_name: str, alias: str) -> Any:
    """The model version behind ``alias``, or None when the model or the alias does not exist."""
    client = configure_mlflow().MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except Exception as exc:
        if is_unreachable(exc):
            raise
        if is_not_found(exc) or "alias" in str(exc).lower():
            return None
        raise


# How MLflow's REST client words a request it gave up on (refused, timed out, retries spent).
_GAVE_UP = re.compile(r"API request to \S+ failed with (timeout )?exception")


def is_unreachable(exc: BaseException) -> bool:
    """MLflow's REST client gave up on the server (connection refused, timeout, retries
    exhausted), as opposed to the server answering with an error."""
    import requests

    if isinstance(exc, requests.exceptions.RequestException):
        return True
    return _GAVE_UP.search(str(exc)) is not None


def unreachable_error(exc: BaseException) -> StepError:
    """The one-line error for ``exc`` (``is_unreachable``): the server, credentials masked,
    how long the client tried, and the first line of what it said."""
    retries = int(_setting("MLFLOW_HTTP_REQUEST_MAX_RETRIES"))
    return StepError(
        f"cannot reach MLflow at {shown_tracking_uri()} (gave up after {retries} retries, "
        f"{request_bound_seconds():.0f} s at most): {first_line(exc)}"
    )


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type when it has none), at most 300
    characters, credentials of any URI in it masked."""
    text = str(exc).splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return redact_uri(text)


@contextlib.contextmanager
def reaching_mlflow() -> Iterator[None]:
    """Turn "the tracking server is down or does not answer" into a one-line StepError naming
    the tracking URI (credentials masked)."""
    try:
        yield
    except StepError:
        raise
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        raise unreachable_error(exc) from exc
