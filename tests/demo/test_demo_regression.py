"""``python -m demo --task regression``: the regression sample (delivery minutes that depend on
numeric and categorical columns, with noise), the flags that choose it, and how the screen
shows a regression trial."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.task import MAX_CLASS_VALUES, infer_task
from demo.listener import validation_metrics
from demo.run import Plan, build_parser, main, plan_run, write_sample
from demo.sample_data import (
    REGRESSION_TARGET,
    TARGET,
    delivery_minutes,
    generate,
    generate_for,
    generate_regression,
)
from demo.sample_data import main as sample_main
from tests.dags.conftest import run_demo


@pytest.fixture(scope="module")
def deliveries() -> pd.DataFrame:
    return generate_regression(4000, seed=3)


def test_the_regression_sample_is_deterministic_with_missing_values(
    deliveries: pd.DataFrame,
) -> None:
    assert deliveries.equals(generate_regression(4000, seed=3))
    assert not deliveries.equals(generate_regression(4000, seed=4))
    assert deliveries.drop(columns=REGRESSION_TARGET).isna().any().any()
    assert deliveries[REGRESSION_TARGET].notna().all()
    assert deliveries.select_dtypes("number").shape[1] > 3
    assert deliveries.select_dtypes(exclude="number").shape[1] > 3


def test_the_target_is_a_number_that_auto_detects_as_regression(
    deliveries: pd.DataFrame,
) -> None:
    minutes = deliveries[REGRESSION_TARGET]
    assert minutes.dtype == np.float64 and (minutes > 0).all()
    assert minutes.nunique() > 10 * MAX_CLASS_VALUES
    assert infer_task(minutes) == "regression"
    assert infer_task(generate(500)[TARGET]) == "classification"


def test_the_minutes_depend_on_numeric_and_categorical_columns(deliveries: pd.DataFrame) -> None:
    minutes = deliveries[REGRESSION_TARGET]
    assert minutes.corr(deliveries["distance_km"]) > 0.4
    by_traffic = minutes.groupby(deliveries["traffic"]).mean()
    assert by_traffic["jam"] > by_traffic["high"] > by_traffic["low"] + 3
    by_kitchen = minutes.groupby(deliveries["restaurant_type"]).mean()
    assert by_kitchen["grill"] > by_kitchen["bakery"] + 8


def test_the_minutes_carry_noise_beyond_the_columns(deliveries: pd.DataFrame) -> None:
    """The same deliveries drawn with other noise take other minutes: a few minutes apart,
    not systematically."""
    features = deliveries.drop(columns=REGRESSION_TARGET)
    first = delivery_minutes(features, np.random.default_rng(1))
    second = delivery_minutes(features, np.random.default_rng(2))
    apart = first - second
    assert 2.0 < apart.std() < 8.0 and abs(apart.mean()) < 0.5


def test_generate_for_chooses_the_sample_by_task() -> None:
    assert generate_for("regression", 50, seed=1).equals(generate_regression(50, seed=1))
    assert generate_for("classification", 50, seed=1).equals(generate(50, seed=1))
    with pytest.raises(ValueError, match="'ranking' is not one of"):
        generate_for("ranking", 50)


def test_the_sample_command_writes_the_regression_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "deliveries.csv"
    assert sample_main(["--rows", "120", "--task", "regression", "--output", str(output)]) == 0
    written = pd.read_csv(output)
    assert len(written) == 120 and REGRESSION_TARGET in written.columns
    assert "wrote 120 rows" in capsys.readouterr().out


def plan(*argv: str) -> Plan:
    return plan_run(build_parser().parse_args(list(argv)))


def test_task_regression_plans_the_regression_sample_without_an_accuracy_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    planned = plan("--task", "regression")
    assert planned.task == "regression" and planned.data is None
    assert planned.model_name == "demo-regressor"
    assert planned.home == tmp_path / ".demo" / "regression"
    assert "min_accuracy" not in planned.conf
    classification = plan()
    assert (classification.task, classification.model_name) == ("classification", "demo-classifier")
    assert classification.home == tmp_path / ".demo"
    assert classification.conf["min_accuracy"] == 0.7
    named = plan("--task", "regression", "--model-name", "eta", "--home", "h")
    assert (named.model_name, named.home) == ("eta", tmp_path / "h")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "regression", "--min-accuracy", "0.8"], "--min-accuracy is a classification"),
        (["--task", "regression", "--source", "x.csv", "--target", "y"], "--task chooses the"),
    ],
)
def test_flags_that_do_not_go_with_the_task_exit_2_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    home = tmp_path / "home"
    assert main(["--home", str(home), *args]) == 2
    assert message in capsys.readouterr().err
    assert not home.exists()


def test_an_unknown_task_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--task", "ranking"])
    assert exited.value.code == 2
    assert "--task: invalid choice: 'ranking'" in capsys.readouterr().err


def test_the_regression_sample_is_written_at_the_dated_path(tmp_path: Path) -> None:
    day = dt.datetime(2025, 3, 4, tzinfo=dt.timezone.utc)
    data = write_sample(tmp_path, day, 200, "regression")
    assert data.target == REGRESSION_TARGET
    written = pd.read_parquet(tmp_path / "data" / "2025-03-04" / "sample.parquet")
    assert written.equals(generate_regression(200))


def test_a_regression_trial_shows_its_rmse_r2_and_loss() -> None:
    result = {"task": "regression", "rmse": 3.41234, "r2": 0.92151, "loss": 0.0785, "mae": 2.5}
    assert validation_metrics(result) == "val rmse 3.412  r2 0.9215  loss 0.0785"
    classified = {"task": "classification", "accuracy": 0.85123, "loss": 0.33011}
    assert validation_metrics(classified) == "val accuracy 0.8512  loss 0.3301"
    assert validation_metrics({"accuracy": 0.5, "loss": None}) == "val accuracy 0.5000  loss -"


@pytest.mark.slow
@pytest.mark.integration
def test_the_main_job_runs_on_the_regression_sample(tmp_path: Path) -> None:
    """``python -m demo --task regression``: the DAG detects the numeric target as regression
    (no --task reaches validate or preprocess), trains, evaluates and deploys a regressor, and
    the champion scores the day's sample; the screen names the regression metrics."""
    sweep = {"search_space": {"lr": [0.003], "width": [32], "epochs": [1]}}
    home = tmp_path / "home"
    run = run_demo(home, "--task", "regression", "--conf", json.dumps(sweep))
    assert run.returncode == 0, run.output[-3000:]
    assert f"sample dataset (regression, target {REGRESSION_TARGET}): 3000 rows" in run.output
    prepared = run.result("data_preparation.preprocess")
    assert (prepared["task"], prepared["target"], prepared["classes"]) == (
        "regression", REGRESSION_TARGET, None,
    )  # fmt: skip
    trained = run.result("hyperparameter_tuning.train.0")
    assert trained["task"] == "regression" and trained["rmse"] > 0 and trained["accuracy"] is None
    evaluated = run.result("evaluate")
    assert (evaluated["task"], evaluated["reason"]) == ("regression", "first_model")
    assert "Deployed: demo-regressor version 1 is now @champion" in run.output
    trial = r"^ +\d+s  hyperparameter_tuning\.train\[0\] +success  val rmse [\d.e+]+  r2 -?\d"
    assert re.search(trial, run.output, re.M), run.output[-3000:]
    assert "accuracy" not in run.output.split("Sweep (metrics on the validation split):")[1]
    predictions = next((home / "scores").glob("*/predictions.parquet"))
    scored = pd.read_parquet(predictions)
    assert len(scored) == 3000 and scored["prediction"].dtype == np.float64
    assert np.isfinite(scored["prediction"]).all()
    assert re.search(r"^scored 3000 rows with demo-regressor v1: ", run.output, re.M)
