"""``python -m evaluator`` on a regression target, end to end: preprocess a numeric target with
``--task regression``, train with ``python -m trainer``, then evaluate: the first model, a better
candidate against that champion (the paired interval of the RMSE reduction and the decision),
the R² floor, per-slice RMSE and the plots on the run, each checked against the served models'
own predictions; a classification champion is baseline_incompatible, a regression champion
predicting NaN is champion_unusable, and a candidate of the other task fails the step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest

from contract.schemas import load_schema
from evaluator.cli import main
from tests.scorer.regression_models import log_nan_regression_model
from tests.step_failures import assert_step_fails
from tests.trainer.test_regression_cli import (
    REGRESSION_FLAGS,
    TARGET,
    preprocess_regression,
    regression_frame,
)
from tests.trainer.workspace import (
    CANDIDATES_EXPERIMENT,
    Workspace,
    evaluate,
    features_of,
    load_model,
    log_untrained_model,
    mlflow_client,
    preprocess,
    run_ok,
    train,
    workspace_env,
)

pytestmark = pytest.mark.integration

EXPERIMENT = "regression-candidates"
SLICE_COLUMN = "city"  # the frame's one categorical column


@dataclass(frozen=True)
class RegressionRuns:
    """Regression data with a weak candidate (two epochs) and a strong one (the trainer's
    regression settings), plus a classification model over the same input columns."""

    workspace: Workspace
    weak: dict[str, Any]
    strong: dict[str, Any]
    classifier_run_id: str


def classification_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The same input columns, with the target turned into two labels."""
    high = frame[TARGET] > frame[TARGET].median()
    return frame.assign(**{TARGET: np.where(high, "high", "low")})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> RegressionRuns:
    root = tmp_path_factory.mktemp("regression-evaluation")
    frame = regression_frame()
    with workspace_env(root):
        data = preprocess_regression(frame, root)
        workspace = Workspace(root=root, home=root / "home", data=data, frame=frame)
        weak = train(data, EXPERIMENT, *REGRESSION_FLAGS, "--epochs", "2")
        strong = train(data, EXPERIMENT, *REGRESSION_FLAGS)
        labels = preprocess(classification_frame(frame), root / "labels", TARGET)
        classifier = log_untrained_model(labels)
    return RegressionRuns(workspace, weak, strong, classifier)


@pytest.fixture
def store(runs: RegressionRuns, monkeypatch: pytest.MonkeyPatch) -> RegressionRuns:
    runs.workspace.activate(monkeypatch)
    return runs


def deploy(run_id: str, model_name: str) -> dict[str, Any]:
    """Make ``run_id``'s model the champion (``--force``: the gate is not under test here)."""
    from deployer.cli import main as deploy_main

    return run_ok(
        "deploy", deploy_main, ["--run-id", run_id, "--model-name", model_name, "--force"]
    )


def predictions(store: RegressionRuns, model_uri: str) -> tuple[np.ndarray, np.ndarray]:
    """A model's predictions on raw/test.parquet and the true values, computed here."""
    raw = store.workspace.raw_test()
    out = load_model(model_uri).predict(features_of(raw, TARGET))
    return out["prediction"].to_numpy("float64"), raw[TARGET].to_numpy("float64")


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def assert_regression_shape(result: dict[str, Any]) -> None:
    """The task's keys and none of classification's, valid in the published v2 schema."""
    jsonschema.validate(result, load_schema("evaluate", 2))
    assert (result["schema_version"], result["task"]) == (2, "regression")
    assert result["new_accuracy"] is None and result["new_f1_score"] is None
    assert result["baseline_accuracy"] is None
    assert set(result["metrics"]) == {"rmse", "mae", "r2"}
    assert result["metrics"]["rmse"] == result["new_rmse"]


def test_the_first_model_is_deployed_with_its_metrics(
    store: RegressionRuns, model_name: str
) -> None:
    run = store.strong
    result = evaluate(run["run_id"], store.workspace.data, model_name)
    assert_regression_shape(result)
    assert (result["should_deploy"], result["reason"]) == (True, "first_model")
    assert result["baseline_rmse"] is None and result["improvement"] is None
    assert (result["improvement_low"], result["improvement_high"]) == (None, None)
    predicted, actual = predictions(store, run["model_path"])
    assert result["test_rows"] == len(actual)
    assert result["new_rmse"] == pytest.approx(rmse(predicted, actual), rel=1e-9)
    assert result["metrics"]["mae"] == pytest.approx(np.mean(np.abs(predicted - actual)), rel=1e-9)
    r2 = 1 - np.sum((actual - predicted) ** 2) / np.sum((actual - actual.mean()) ** 2)
    assert result["metrics"]["r2"] == pytest.approx(r2, rel=1e-9)
    assert result["metrics"]["r2"] > 0.8  # the trainer's regression settings fit this data


def test_the_worst_slice_is_the_city_of_the_highest_rmse(
    store: RegressionRuns, model_name: str
) -> None:
    run = store.strong
    result = evaluate(run["run_id"], store.workspace.data, model_name, "--min-slice-size", "20")
    predicted, actual = predictions(store, run["model_path"])
    city = store.workspace.raw_test()[SLICE_COLUMN].to_numpy()
    by_city = {
        value: (int((city == value).sum()), rmse(predicted[city == value], actual[city == value]))
        for value in np.unique(city)
    }
    worst = result["worst_slice"]
    assert (worst["column"], set(worst)) == (SLICE_COLUMN, {"column", "value", "rows", "rmse"})
    rows, highest = by_city[worst["value"]]
    assert worst["rows"] == rows >= 20
    assert worst["rmse"] == pytest.approx(highest, rel=1e-9)
    assert highest == max(r for n, r in by_city.values() if n >= 20)
    recorded = mlflow_client().get_run(run["run_id"]).data.metrics
    assert recorded["test_worst_slice_rmse"] == worst["rmse"]


def test_slices_smaller_than_the_minimum_are_ignored(
    store: RegressionRuns, model_name: str
) -> None:
    rows = str(len(store.workspace.raw_test()) + 1)
    result = evaluate(
        store.weak["run_id"], store.workspace.data, model_name, "--min-slice-size", rows
    )
    assert result["worst_slice"] is None


def test_a_better_candidate_replaces_the_champion_with_an_interval_of_the_rmse_reduction(
    store: RegressionRuns, model_name: str
) -> None:
    first = evaluate(store.weak["run_id"], store.workspace.data, model_name)
    assert deploy(store.weak["run_id"], model_name)["version"] == 1
    second = evaluate(store.strong["run_id"], store.workspace.data, model_name)
    assert_regression_shape(second)
    assert second["champion_version"] == 1 and second["champion_problem"] is None
    assert second["baseline_rmse"] == first["new_rmse"]
    assert second["baseline_metrics"] == first["metrics"]
    assert second["improvement"] == pytest.approx(second["baseline_rmse"] - second["new_rmse"])
    assert 0 < second["improvement_low"] <= second["improvement"] <= second["improvement_high"]
    assert (second["should_deploy"], second["reason"]) == (True, "promoted")
    assert set(second["baseline_worst_slice"]) == {"column", "value", "rows", "rmse"}
    # The same candidate against a demand beyond its reduction: a 99 % lower RMSE.
    strict = evaluate(
        store.strong["run_id"], store.workspace.data, model_name, "--min-improvement", "0.99"
    )
    assert (strict["should_deploy"], strict["reason"]) == (False, "not_better")
    assert strict["improvement_low"] == second["improvement_low"]  # same seed, same interval


def test_the_champion_against_itself_is_a_tie_and_not_better(
    store: RegressionRuns, model_name: str
) -> None:
    deploy(store.strong["run_id"], model_name)
    result = evaluate(store.strong["run_id"], store.workspace.data, model_name, "--no-plots")
    assert result["baseline_rmse"] == result["new_rmse"]
    assert (result["improvement"], result["improvement_low"], result["improvement_high"]) == (
        0.0,
        0.0,
        0.0,
    )
    assert (result["should_deploy"], result["reason"]) == (False, "not_better")
    assert result["baseline_worst_slice"] == result["worst_slice"]


def test_below_the_r2_floor(store: RegressionRuns, model_name: str) -> None:
    result = evaluate(
        store.strong["run_id"], store.workspace.data, model_name, "--min-r2", "0.9999"
    )
    assert (result["should_deploy"], result["reason"]) == (False, "below_floor")
    assert result["metrics"]["r2"] < 0.9999
    # The accuracy floor is classification's: it does not apply here.
    kept = evaluate(store.strong["run_id"], store.workspace.data, model_name, "--min-accuracy", "1")
    assert kept["reason"] == "first_model"


def test_a_classification_champion_is_incompatible_and_left_to_a_person(
    store: RegressionRuns, model_name: str
) -> None:
    deploy(store.classifier_run_id, model_name)
    result = evaluate(store.strong["run_id"], store.workspace.data, model_name)
    assert_regression_shape(result)
    assert (result["should_deploy"], result["reason"]) == (False, "baseline_incompatible")
    assert result["champion_version"] == 1
    assert result["baseline_rmse"] is None and result["improvement"] is None
    problem = result["champion_problem"]
    assert f"models:/{model_name}/1" in problem and "classification model" in problem, problem
    assert "regression" in problem and "a person decides" in problem, problem


def make_champion(run_id: str, model_name: str) -> None:
    """Point ``champion`` at ``run_id``'s model in the registry itself (the deployer's smoke
    test refuses a model predicting NaN: a champion that broke after it was deployed)."""
    from common.tracking import configure_mlflow, run_model_uri
    from tabular_model.integrity import version_tags

    mlflow = configure_mlflow()
    model_uri = run_model_uri(run_id)
    tags = version_tags(model_uri.removeprefix("models:/"), run_id)
    version = mlflow.register_model(model_uri, model_name, tags=tags).version
    mlflow.MlflowClient().set_registered_model_alias(model_name, "champion", version)


def test_a_champion_predicting_nan_is_unusable_and_a_candidate_doing_so_fails(
    store: RegressionRuns,
    model_name: str,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = log_nan_regression_model(store.workspace.data, CANDIDATES_EXPERIMENT)
    make_champion(broken, model_name)
    result = evaluate(store.strong["run_id"], store.workspace.data, model_name, "--no-plots")
    assert (result["should_deploy"], result["reason"]) == (False, "champion_unusable")
    assert "NaN" in result["champion_problem"], result["champion_problem"]
    argv = ["--run-id", broken, "--data-path", str(store.workspace.data), "--model-name", "other"]
    assert_step_fails(main, "evaluate", argv, capsys, xcom_file, f"--run-id {broken}", "NaN")


def test_a_classification_candidate_on_regression_data_fails_the_step(
    store: RegressionRuns, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = store.classifier_run_id
    argv = ["--run-id", run_id, "--data-path", str(store.workspace.data), "--model-name", "m"]
    line = assert_step_fails(
        main, "evaluate", argv, capsys, xcom_file, f"--run-id {run_id}", "classification model"
    )
    assert "regression target" in line and "raw/test.parquet" in line, line


def test_the_plots_metrics_and_decision_are_recorded_on_the_run(
    store: RegressionRuns, model_name: str
) -> None:
    run_id = store.weak["run_id"]
    deploy(store.strong["run_id"], model_name)
    result = evaluate(run_id, store.workspace.data, model_name)
    client = mlflow_client()
    files = {f.path for f in client.list_artifacts(run_id, "evaluation")}
    assert {
        "evaluation/predicted_vs_actual.png",
        "evaluation/residuals.png",
        "evaluation/result.json",
        "evaluation/slices.json",
    } <= files
    assert not {"evaluation/roc_curve.png", "evaluation/confusion_matrix.png"} & files
    slices = client.download_artifacts(run_id, "evaluation/slices.json")
    recorded = pd.read_json(slices, typ="series")
    assert set(recorded.index) == {"candidate", "champion"}
    assert all(set(s) == {"column", "value", "rows", "rmse"} for s in recorded["champion"])
    data = client.get_run(run_id).data
    for name in ("rmse", "mae", "r2"):
        assert data.metrics[f"test_{name}"] == result["metrics"][name]
    assert data.metrics["test_improvement"] == result["improvement"] < 0  # the weak one
    assert data.tags["evaluation.reason"] == result["reason"]
    assert not result["should_deploy"]
    assert data.metrics["rmse"] == store.weak["rmse"]  # the validation metric is kept
