"""A tracking URI that carries a password, against a real ``mlflow server``: the trainer trains
and logs as usual, and the password appears in no log line, result, tag or param."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mlflow_server import mlflow_server
from tests.trainer.workspace import mlflow_client, train
from tools.servers import MlflowServer

__all__ = ["mlflow_server"]

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SECRET = "s3cr3t-Pa55"


def test_a_password_in_the_tracking_uri_appears_nowhere(
    mlflow_server: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
    preprocessed: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mlflow_server.use(monkeypatch)
    # The server has no authentication: it ignores the credentials the client sends.
    uri = mlflow_server.uri.replace("//", f"//pipeline:{SECRET}@", 1)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    capsys.readouterr()
    result = train(preprocessed, "credentials", "--system-metrics-interval", "0")
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert SECRET not in json.dumps(result)
    run = mlflow_client().get_run(result["run_id"])
    assert SECRET not in json.dumps({**run.data.tags, **run.data.params})
