"""What the trainer, evaluator, deployer and e2e tests share: a workspace (preprocessed
sample data plus its own embedded MLflow store) built once per module, and one-call wrappers
around each step's ``main``.

The conftest's autouse ``isolated_env`` is function-scoped, so a workspace built in a module- or
session-scoped fixture sets its own environment while it trains (``workspace_env``), and a test
that uses it points ``PIPELINE_HOME`` at the workspace (``Workspace.activate``) while keeping its
own ``XCOM_RETURN_PATH``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from contract.xcom import read_result, xcom_path
from demo.sample_data import TARGET

StepMain = Callable[[Sequence[str] | None], int]

# Small and quick, but enough steps for the model to learn something in two epochs.
FAST_TRAIN_FLAGS = (
    "--epochs", "2", "--batch-size", "256", "--width", "64", "--depth", "2", "--device", "cpu",
)  # fmt: skip


@dataclass(frozen=True)
class Workspace:
    root: Path
    home: Path  # PIPELINE_HOME: the embedded MLflow store lives under home/mlflow
    data: Path  # a complete preprocess output
    frame: pd.DataFrame  # the raw rows that were preprocessed

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.home.resolve() / 'mlflow' / 'mlflow.db'}"

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point the embedded MLflow store of the current test at this workspace."""
        monkeypatch.setenv("PIPELINE_HOME", str(self.home))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def raw_test(self) -> pd.DataFrame:
        return pd.read_parquet(self.data / "raw" / "test.parquet")


@contextlib.contextmanager
def workspace_env(root: Path) -> Iterator[None]:
    """The environment ``isolated_env`` gives a test, for use outside function scope."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XCOM_RETURN_PATH", str(root / "xcom" / "return.json"))
        mp.setenv("PIPELINE_HOME", str(root / "home"))
        mp.setenv("TERMINATION_LOG_PATH", str(root / "termination-log"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
        yield


def run_ok(step: str, main: StepMain, argv: Sequence[str]) -> dict[str, Any]:
    """Run a step that must succeed; return its result, validated against the step's schema."""
    rc = main(list(argv))
    assert rc == 0, f"{step} {' '.join(argv)} exited {rc}"
    return read_result(step, xcom_path())


def preprocess(frame: pd.DataFrame, root: Path, target: str = TARGET) -> Path:
    from preprocess.cli import main

    source = root / "raw.parquet"
    root.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(source, index=False)
    output = root / "processed"
    run_ok(
        "preprocess", main, ["--input", str(source), "--output", str(output), "--target", target]
    )
    return output


def train(data: Path, experiment: str, *flags: str) -> dict[str, Any]:
    """Train with the fast flags (later flags override earlier ones) and return the result."""
    from trainer.cli import main

    argv = ["--data-path", str(data), "--experiment-name", experiment, *FAST_TRAIN_FLAGS, *flags]
    return run_ok("train", main, argv)


def evaluate(run_id: str, data: Path, model_name: str, *flags: str) -> dict[str, Any]:
    from evaluator.cli import main

    argv = ["--run-id", run_id, "--data-path", str(data), "--model-name", model_name, *flags]
    return run_ok("evaluate", main, argv)


def build_workspace(root: Path, frame: pd.DataFrame) -> Workspace:
    """Preprocess ``frame`` under ``root`` (call inside ``workspace_env(root)``)."""
    return Workspace(root=root, home=root / "home", data=preprocess(frame, root), frame=frame)


def load_model(model_uri: str) -> Any:
    """Load a logged or registered model from the current embedded store."""
    from common.tracking import configure_mlflow

    return configure_mlflow().pyfunc.load_model(model_uri)


def mlflow_client() -> Any:
    from common.tracking import configure_mlflow

    return configure_mlflow().MlflowClient()


def features_of(frame: pd.DataFrame, target: str = TARGET) -> pd.DataFrame:
    return frame.drop(columns=[target]).reset_index(drop=True)


@pytest.fixture(scope="module", autouse=True)
def torch_single_thread() -> Iterator[None]:
    """Tiny networks train far faster on one thread, and do not stall when the machine's two
    cores are busy with other work (OpenMP threads spinning against each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class TwoRuns:
    """A workspace with two trained candidates of different seeds and learning rates."""

    workspace: Workspace
    first: dict[str, Any]
    second: dict[str, Any]


CANDIDATES_EXPERIMENT = "candidates"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> TwoRuns:
    root = tmp_path_factory.mktemp("two-runs")
    with workspace_env(root):
        workspace = build_workspace(root, sample_frame)
        first = train(workspace.data, CANDIDATES_EXPERIMENT, "--seed", "1")
        second = train(workspace.data, CANDIDATES_EXPERIMENT, "--seed", "2", "--lr", "5e-3")
    return TwoRuns(workspace, first, second)


def failed_run_without_model() -> str:
    """A FAILED run in the candidates experiment that logged no model."""
    client = mlflow_client()
    experiment_id = client.get_experiment_by_name(CANDIDATES_EXPERIMENT).experiment_id
    run = client.create_run(experiment_id)
    client.set_terminated(run.info.run_id, "FAILED")
    return str(run.info.run_id)


@pytest.fixture
def store(two_runs: TwoRuns, monkeypatch: pytest.MonkeyPatch) -> TwoRuns:
    """This test's MLflow calls (and steps) use the two runs' store; its XCom stays its own."""
    two_runs.workspace.activate(monkeypatch)
    return two_runs


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """A registered-model name of this test's own, so tests sharing a store do not interfere."""
    return "m-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")


def log_untrained_model(
    data: Path, experiment: str = CANDIDATES_EXPERIMENT, fill: float | None = None
) -> str:
    """Log an untrained network for the preprocess output ``data`` as a run's served model
    (no training: for tests that damage a model), every weight set to ``fill`` when given;
    returns the run id."""
    import torch

    from common import dataset
    from common.tracking import configure_mlflow, ensure_experiment
    from tabular_model.network import NetworkConfig, TabularMLP
    from tabular_model.packaging import log_served_model

    transform = dataset.load_transform(str(data))
    config = NetworkConfig(
        numeric_features=len(transform.numeric_feature_names),
        cardinalities=tuple(c.cardinality for c in transform.categorical),
        n_classes=len(transform.classes),
        width=8,
        depth=1,
        dropout=0.0,
    )
    net = TabularMLP(config)
    if fill is not None:
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.fill_(fill)
    example = pd.read_parquet(data / "raw" / "sample.parquet")
    mlflow = configure_mlflow()
    with mlflow.start_run(experiment_id=ensure_experiment(experiment)) as run:
        log_served_model(net, transform, example)
    return str(run.info.run_id)


def stored_model_file(run_id: str, file_name: str) -> Path:
    """The stored copy (in the embedded store's artifact folder) of one file of the model that
    run ``run_id`` logged."""
    from common.tracking import configure_mlflow, run_model_uri

    mlflow = configure_mlflow()
    model_id = run_model_uri(run_id).removeprefix("models:/")
    location = mlflow.get_logged_model(model_id).artifact_location
    found = sorted(Path(location.removeprefix("file://")).rglob(file_name))
    assert len(found) == 1, f"{file_name} under {location}: {found}"
    return found[0]
