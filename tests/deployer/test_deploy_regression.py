"""``python -m deployer`` with regression models: a trained regression run passes the smoke test
on the raw sample rows of its data (one finite number per row, no probabilities) and becomes
champion; a regression model that predicts NaN fails it, and ``champion`` stays where it was;
a rollback smoke-tests the regression version it goes back to."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from contract.xcom import read_result
from deployer.cli import main
from tests.scorer.regression_models import RegressionRuns, build_regression_runs
from tests.step_failures import assert_step_fails
from tests.trainer.workspace import evaluate, load_model, mlflow_client, run_ok, train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def regression_runs(tmp_path_factory: pytest.TempPathFactory) -> RegressionRuns:
    return build_regression_runs(tmp_path_factory.mktemp("deploy-regression"))


@pytest.fixture
def store(regression_runs: RegressionRuns, monkeypatch: pytest.MonkeyPatch) -> RegressionRuns:
    """This test's MLflow calls (and steps) use the regression runs' store."""
    regression_runs.workspace.activate(monkeypatch)
    return regression_runs


def aliases(model_name: str) -> dict[str, int]:
    found = mlflow_client().get_registered_model(model_name).aliases
    return {name: int(version) for name, version in found.items()}


def deploy(run_id: str, model_name: str, *flags: str) -> dict[str, object]:
    argv = ["--run-id", run_id, "--model-name", model_name, "--force", *flags]
    return run_ok("deploy", main, argv)


def test_a_trained_regression_run_passes_the_smoke_test_and_becomes_champion(
    store: RegressionRuns, model_name: str
) -> None:
    data = store.workspace.data
    result = deploy(store.trained["run_id"], model_name, "--data-path", str(data))
    sample = pd.read_parquet(data / "raw" / "sample.parquet")
    assert result["smoke_test_rows"] == len(sample) > 0
    assert (result["version"], result["alias_moved"]) == (1, True)
    assert aliases(model_name) == {"champion": 1}
    champion = load_model(f"models:/{model_name}@champion")
    predicted = champion.predict(store.features(sample))
    assert list(predicted.columns) == ["prediction"]


def test_a_regression_model_predicting_nan_does_not_become_champion(
    store: RegressionRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(store.workspace.data)
    deploy(store.trained["run_id"], model_name, "--data-path", data)
    argv = ["--run-id", store.broken_run_id, "--model-name", model_name, "--force"]
    line = assert_step_fails(main, "deploy", [*argv, "--data-path", data], capsys, xcom_file,
                             f"smoke test of models:/{model_name}/2 failed, champion not moved",
                             "NaN or infinite predictions")  # fmt: skip
    assert "Traceback" not in line
    assert aliases(model_name) == {"champion": 1}


def test_a_rollback_smoke_tests_the_regression_version_it_returns_to(
    store: RegressionRuns, model_name: str
) -> None:
    """v1 (the trained run) → v2 (a second trained run) → rollback to v1, whose smoke test
    predicts its own input example."""
    deploy(store.trained["run_id"], model_name)
    second = train(store.workspace.data, "regression-candidates", "--epochs", "1", "--seed", "4")
    deploy(second["run_id"], model_name)
    assert aliases(model_name) == {"champion": 2, "previous_champion": 1}
    assert main(["--rollback", "--model-name", model_name]) == 0
    result = read_result("deploy")
    assert (result["action"], result["version"], result["previous_version"]) == ("rollback", 1, 2)
    assert result["smoke_test_rows"] > 0
    assert aliases(model_name) == {"champion": 1, "previous_champion": 2}


def test_an_evaluated_regression_run_deploys_without_force_tagged_with_its_errors(
    store: RegressionRuns, model_name: str
) -> None:
    data = store.workspace.data
    run_id = store.trained["run_id"]
    evaluation = evaluate(run_id, data, model_name)
    assert (evaluation["task"], evaluation["should_deploy"]) == ("regression", True)
    argv = ["--run-id", run_id, "--model-name", model_name, "--data-path", str(data)]
    assert run_ok("deploy", main, argv)["version"] == 1
    tags = mlflow_client().get_model_version(model_name, "1").tags
    assert float(tags["evaluation.test_rmse"]) == pytest.approx(evaluation["new_rmse"])
    assert {"evaluation.test_mae", "evaluation.test_r2"} <= set(tags)
    assert "evaluation.test_accuracy" not in tags and "deploy.forced" not in tags
