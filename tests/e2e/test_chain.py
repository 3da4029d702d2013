"""The whole chain on the project's sample data, each step through its package's ``main`` and
each result read back through the contract, as Airflow would pass it on: validate -> preprocess
-> train x2 -> pick the best by validation accuracy -> evaluate -> deploy -> serve."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demo.sample_data import TARGET, generate
from tests.trainer.workspace import (
    FAST_TRAIN_FLAGS,
    features_of,
    load_model,
    mlflow_client,
    run_ok,
)

pytestmark = pytest.mark.integration

CONFIGS = {
    "adamw-small-lr": ["--lr", "1e-3", "--optimizer", "adamw", "--seed", "0"],
    "adam-large-lr": ["--lr", "5e-3", "--optimizer", "adam", "--seed", "1", "--batch-size", "128"],
}
MODEL_NAME = "credit-default"
EXPERIMENT = "e2e-sweep"


def test_validate_preprocess_train_evaluate_deploy(tmp_path: Path, isolated_env: Path) -> None:
    from deployer.cli import main as deploy_main
    from evaluator.cli import main as evaluate_main
    from preprocess.cli import main as preprocess_main
    from trainer.cli import main as train_main
    from validator.cli import main as validate_main

    frame = generate(4000)
    source = tmp_path / "landing" / "credit.parquet"
    source.parent.mkdir()
    frame.to_parquet(source, index=False)

    argv = ["--source", str(source), "--target", TARGET, "--date", "2024-05-01"]
    validated = run_ok("validate", validate_main, argv)
    assert validated["row_count"] == 4000
    assert validated["column_count"] == frame.shape[1]
    assert validated["anomaly_counts"]["error"] == 0
    assert Path(validated["report_uri"]).is_file()

    argv = ["--input", validated["source"], "--output", str(tmp_path / "processed")]
    prepared = run_ok("preprocess", preprocess_main, [*argv, "--target", TARGET])
    assert sum(prepared["row_counts"].values()) == 4000
    assert prepared["classes"] == ["no", "yes"]
    data_path = prepared["output_uri"]

    train_argv = ["--data-path", data_path, "--experiment-name", EXPERIMENT, *FAST_TRAIN_FLAGS]
    candidates = {
        name: run_ok("train", train_main, [*train_argv, *flags]) for name, flags in CONFIGS.items()
    }
    assert len({c["run_id"] for c in candidates.values()}) == 2
    assert candidates["adam-large-lr"]["hyperparameters"]["optimizer"] == "adam"
    assert candidates["adam-large-lr"]["hyperparameters"]["batch_size"] == 128
    best_name = max(candidates, key=lambda n: candidates[n]["accuracy"])
    best = candidates[best_name]
    other = next(c for n, c in candidates.items() if n != best_name)
    assert best["accuracy"] >= other["accuracy"]

    evaluate_argv = ["--data-path", data_path, "--model-name", MODEL_NAME]
    verdict = run_ok(
        "evaluate",
        evaluate_main,
        ["--run-id", best["run_id"], *evaluate_argv, "--min-accuracy", "0.5"],
    )
    assert (verdict["should_deploy"], verdict["reason"]) == (True, "first_model")
    assert verdict["test_rows"] == prepared["row_counts"]["test"]

    argv = ["--run-id", verdict["run_id"], "--model-name", verdict["model_name"]]
    deployed = run_ok("deploy", deploy_main, argv)
    assert deployed["version"] == 1
    assert deployed["alias"] == "champion"
    assert deployed["run_id"] == best["run_id"]

    # The champion, loaded without pickle, scores the raw test rows as the evaluator did.
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    raw_test = pd.read_parquet(prepared["raw_test_uri"])
    champion = load_model(f"models:/{MODEL_NAME}@champion")
    out = champion.predict(features_of(raw_test))
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"]
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((out["prediction"].to_numpy() == raw_test[TARGET].to_numpy()).mean())
    assert accuracy == pytest.approx(verdict["new_accuracy"], abs=1e-12)

    # The next candidate is judged against that champion.
    challenger = run_ok("evaluate", evaluate_main, ["--run-id", other["run_id"], *evaluate_argv])
    assert challenger["champion_version"] == 1
    assert challenger["baseline_accuracy"] == verdict["new_accuracy"]

    # Everything went to the embedded store under $PIPELINE_HOME.
    assert (isolated_env / "home" / "mlflow" / "mlflow.db").is_file()
    runs = mlflow_client().search_runs(
        [mlflow_client().get_experiment_by_name(EXPERIMENT).experiment_id]
    )
    assert sorted(r.info.run_id for r in runs) == sorted(c["run_id"] for c in candidates.values())
    assert {r.info.status for r in runs} == {"FINISHED"}
