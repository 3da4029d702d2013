"""A real ``mlflow server`` for a test module (``tools.servers.running_mlflow_server``): sqlite
backend and a local artifact folder served by the server itself, on 127.0.0.1 and a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.servers import MlflowServer, running_mlflow_server


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One server per test module that asks for it."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server
