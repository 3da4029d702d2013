"""Where MLflow lives: ``MLFLOW_TRACKING_URI`` when set (a server in the cluster), otherwise an
embedded sqlite store and local artifact folder under ``$PIPELINE_HOME`` (no server needed)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.step import StepError

DEFAULT_PIPELINE_HOME = ".pipeline"

# MLflow's own HTTP retry defaults (7 retries, backoff factor 2, 120 s timeout) keep a pod
# waiting for minutes on a server that is down; these bound it to about half a minute. Artifact
# progress bars would break the one-line failure message on stderr. The environment still wins,
# so an operator can change any of them.
MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def pipeline_home() -> Path:
    """Root for local state of the embedded default (MLflow store, default outputs)."""
    return Path(os.environ.get("PIPELINE_HOME", DEFAULT_PIPELINE_HOME)).resolve()


def embedded_store() -> tuple[str, Path]:
    """The sqlite tracking URI and artifact folder of the embedded default."""
    root = pipeline_home() / "mlflow"
    return f"sqlite:///{root / 'mlflow.db'}", root / "artifacts"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or embedded_store()[0]


def configure_mlflow() -> Any:
    """Point MLflow at the tracking URI and return the ``mlflow`` module (imported lazily)."""
    import mlflow

    # Creating or migrating the embedded store logs at INFO on stderr, which holds only a
    # failed step's reason line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    for name, value in MLFLOW_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow


def ensure_experiment(name: str) -> str:
    """Return the id of experiment ``name``, creating it (with a local artifact folder when on
    the embedded store) if needed."""
    mlflow = configure_mlflow()
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None and experiment.lifecycle_stage == "deleted":
        raise StepError(
            f"MLflow experiment {name!r} at {tracking_uri()} is deleted; restore it or pick "
            "another --experiment-name"
        )
    if experiment is not None:
        return str(experiment.experiment_id)
    artifact_location = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
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
    """The ``models:/<id>`` URI of the model logged by run ``run_id``; a clear error naming the
    tracking URI when the run or its model does not exist."""
    mlflow = configure_mlflow()
    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except Exception as exc:
        if is_not_found(exc):
            raise StepError(f"--run-id {run_id}: no such run at {tracking_uri()}") from exc
        raise StepError(f"cannot reach MLflow at {tracking_uri()}: {exc}") from exc
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{model_name_in_run}'",
        output_format="list",
    )
    if not models:
        raise StepError(f"--run-id {run_id}: the run logged no model named {model_name_in_run!r}")
    return f"models:/{models[0].model_id}"


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


def is_unreachable(exc: BaseException) -> bool:
    """MLflow's REST client gave up on the server (connection refused, timeout, retries
    exhausted), as opposed to the server answering with an error."""
    import requests

    if isinstance(exc, requests.exceptions.RequestException):
        return True
    return "API request to" in str(exc) and "failed with exception" in str(exc)


@contextlib.contextmanager
def reaching_mlflow() -> Iterator[None]:
    """Turn "the tracking server is down" into a one-line StepError naming the tracking URI."""
    try:
        yield
    except StepError:
        raise
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise StepError(
            f"cannot reach MLflow at {tracking_uri()} (gave up after {retries} retries): {first}"
        ) from exc
