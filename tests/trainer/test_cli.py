"""``trainer.cli.main`` on a complete preprocess output: the result, the MLflow run and the logged
model (loaded without pickle, scoring raw rows)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score, log_loss

from contract.xcom import read_result
from demo.sample_data import TARGET
from tests.preprocess.frames import seeded_splits
from tests.trainer.conftest import TRAINED_EXPERIMENT, TRAINED_IMAGE, TrainedRun
from tests.trainer.workspace import features_of, load_model, mlflow_client, train

pytestmark = pytest.mark.integration

CLASSES = ["no", "yes"]  # preprocess sorts string labels
OUTPUT_COLUMNS = ["prediction", "proba_no", "proba_yes"]


@pytest.fixture
def store(trained: TrainedRun, monkeypatch: pytest.MonkeyPatch) -> TrainedRun:
    """This test's MLflow calls go to the shared run's store."""
    trained.workspace.activate(monkeypatch)
    return trained


def raw_val_rows(trained: TrainedRun) -> pd.DataFrame:
    """The untransformed validation rows, rebuilt with preprocess's own (seeded) split; the
    rebuilt test rows must equal raw/test.parquet, which proves the rebuild right."""
    frame = trained.workspace.frame
    parts = seeded_splits(frame)  # preprocess defaults
    rebuilt_test = parts["test"].reset_index(drop=True)
    pd.testing.assert_frame_equal(rebuilt_test, trained.workspace.raw_test(), check_dtype=False)
    return parts["val"].reset_index(drop=True)


def test_result_is_a_valid_train_result(trained: TrainedRun) -> None:
    result = read_result("train", trained.xcom)  # raises unless it matches train.v1
    assert result == trained.result
    assert result["experiment_name"] == TRAINED_EXPERIMENT
    assert result["epochs"] == 2
    assert result["device"] == "cpu"
    assert result["samples_per_sec"] > 0
    assert result["model_path"].startswith("models:/")
    assert result["hyperparameters"] == {
        "lr": 3e-3, "batch_size": 256, "optimizer": "adamw", "epochs": 2, "weight_decay": 1e-5,
        "patience": 16, "seed": 5, "width": 64, "depth": 2, "dropout": 0.1,
        "lr_schedule": "cosine", "warmup_epochs": 1.0, "grad_clip": 1.0, "class_weights": "none",
        "label_smoothing": 0.1, "ema_decay": 0.99, "deterministic": False,
        "numeric_embedding": "ple+periodic", "embedding_dim": 8, "periodic_sigma": 3.0,
        "ple_bins": 16, "ensemble_size": 1, "compile": False,
    }  # fmt: skip
    assert 0 < result["accuracy"] <= 1
    assert result["loss"] > 0
    assert (result["world_size"], result["resumed"]) == (1, False)
    assert result["data_fingerprint"].startswith("sha256:")


def test_run_is_finished_and_holds_the_result_metrics(store: TrainedRun) -> None:
    result = store.result
    client = mlflow_client()
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    experiment = client.get_experiment_by_name(TRAINED_EXPERIMENT)
    assert run.info.experiment_id == experiment.experiment_id
    metrics = run.data.metrics
    assert metrics["accuracy"] == result["accuracy"]
    assert metrics["f1_score"] == result["f1_score"]
    assert metrics["loss"] == result["loss"]
    assert metrics["train_samples_per_sec"] == pytest.approx(result["samples_per_sec"])
    # The reported metrics are the kept weights' (with the default pair of networks, each at
    # its own best epoch: tests/trainer/test_loop.py); best_epoch is the last epoch that
    # improved them, and the history has every epoch.
    best_epoch = int(metrics["best_epoch"])
    assert 1 <= best_epoch <= result["epochs"]
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_loss")}
    assert sorted(history) == list(range(1, result["epochs"] + 1))
    accuracy = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")}
    assert sorted(accuracy) == sorted(history)


def test_run_has_its_hyperparameters_logged(store: TrainedRun) -> None:
    params = mlflow_client().get_run(store.result["run_id"]).data.params
    manifest = json.loads((store.workspace.data / "manifest.json").read_text())
    expected = {
        "lr": "0.003", "batch_size": "256", "optimizer": "adamw", "epochs": "2",
        "patience": "16", "seed": "5", "width": "64", "depth": "2", "dropout": "0.1",
        "weight_decay": "1e-05", "lr_schedule": "cosine", "warmup_epochs": "1.0",
        "grad_clip": "1.0", "class_weights": "none", "deterministic": "False",
        "numeric_embedding": "ple+periodic", "ema_decay": "0.99", "compile": "False",
        "device": "cpu", "data_path": str(store.workspace.data),
        "train_rows": str(manifest["row_counts"]["train"]),
    }  # fmt: skip
    assert {k: params.get(k) for k in expected} == expected


def test_run_is_tagged_with_its_data_code_and_image(store: TrainedRun) -> None:
    import importlib.metadata

    tags = mlflow_client().get_run(store.result["run_id"]).data.tags
    manifest = json.loads((store.workspace.data / "manifest.json").read_text())
    assert tags["data_fingerprint"] == manifest["fingerprint"]  # the data preprocess read
    assert tags["data_fingerprint"].startswith("sha256:")
    assert tags["code_version"] == importlib.metadata.version("tabular-gpu-pipeline")
    assert tags["image"] == TRAINED_IMAGE
    assert tags["world_size"] == "1"
    assert tags["data_placement"] == "device"
    assert tags["checkpoint_dir"].startswith(str(store.workspace.home / "checkpoints"))


def test_run_is_named_by_the_settings_that_differ_from_the_defaults(store: TrainedRun) -> None:
    run = mlflow_client().get_run(store.result["run_id"])
    # FAST_TRAIN_FLAGS and TRAINED_FLAGS; the device is not a setting of the model.
    assert run.info.run_name == "width=64 depth=2 lr=0.003 batch_size=256 epochs=2 seed=5"


def test_run_carries_the_callers_tags(store: TrainedRun) -> None:
    tags = mlflow_client().get_run(store.result["run_id"]).data.tags
    assert tags["data_date"] == "2026-12-01"
    assert tags["airflow.dag_run_id"] == "manual__1"


def test_run_logs_its_source_and_splits_as_dataset_inputs(store: TrainedRun) -> None:
    run = mlflow_client().get_run(store.result["run_id"])
    manifest = json.loads((store.workspace.data / "manifest.json").read_text())
    inputs = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i
        for i in run.inputs.dataset_inputs
    }
    assert sorted(inputs) == ["source", "training", "validation"]
    source = inputs["source"].dataset
    assert json.loads(source.source) == {"uri": manifest["source"]}
    assert source.name == "raw.parquet"
    assert source.digest == manifest["fingerprint"].removeprefix("sha256:")[:16]
    for context, split in (("training", "train"), ("validation", "val")):
        data = inputs[context].dataset
        assert data.name == f"raw.parquet:{split}"
        assert json.loads(data.source) == {"uri": str(store.workspace.data / f"{split}.parquet")}
        rows = {t.key: t.value for t in inputs[context].tags}["rows"]
        assert rows == str(manifest["row_counts"][split])
    assert inputs["training"].dataset.digest != inputs["validation"].dataset.digest


def test_data_fingerprint_without_one_in_the_manifest_covers_what_the_trainer_reads(
    preprocessed: Path,
) -> None:
    from trainer.job import data_fingerprint

    manifest = preprocessed / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "fingerprint": None}))
    before = data_fingerprint(str(preprocessed))
    assert before.startswith("sha256:") and len(before) == len("sha256:") + 64
    frame = pd.read_parquet(preprocessed / "val.parquet")
    frame.iloc[::-1].to_parquet(preprocessed / "val.parquet", index=False)
    assert data_fingerprint(str(preprocessed)) != before


def test_logged_model_has_a_signature_and_an_input_example(store: TrainedRun) -> None:
    info = mlflow.models.get_model_info(store.result["model_path"])
    assert info.signature is not None
    assert info.signature.inputs.input_names()
    assert info.signature.outputs is not None
    assert info.saved_input_example_info is not None
    model = mlflow.models.Model.load(store.result["model_path"])
    example = model.load_input_example(
        mlflow.artifacts.download_artifacts(store.result["model_path"])
    )
    assert sorted(example.columns) == sorted(info.signature.inputs.input_names())


def test_reported_metrics_are_those_of_the_validation_rows(store: TrainedRun) -> None:
    val = raw_val_rows(store)
    out = load_model(store.result["model_path"]).predict(features_of(val))
    truth = val[TARGET].to_numpy()
    proba = out[["proba_no", "proba_yes"]].to_numpy("float64")
    assert (out["prediction"].to_numpy() == truth).mean() == pytest.approx(
        store.result["accuracy"], abs=1e-9
    )
    assert f1_score(truth, out["prediction"], pos_label="yes", zero_division=0) == pytest.approx(
        store.result["f1_score"], abs=1e-9
    )
    assert log_loss(truth == "yes", proba[:, 1]) == pytest.approx(store.result["loss"], rel=1e-5)


def test_logged_model_loads_without_pickle_and_predicts_raw_rows(store: TrainedRun) -> None:
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    model = load_model(store.result["model_path"])
    raw = store.workspace.raw_test()
    out = model.predict(features_of(raw))
    assert list(out.columns) == OUTPUT_COLUMNS
    assert len(out) == len(raw)
    assert set(out["prediction"]) <= set(CLASSES)
    proba = out[["proba_no", "proba_yes"]].to_numpy("float64")
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out["prediction"], np.array(CLASSES)[proba.argmax(1)])


def test_logged_model_signature_takes_the_raw_feature_columns(store: TrainedRun) -> None:
    model = load_model(store.result["model_path"])
    expected = [c for c in store.workspace.frame.columns if c != TARGET]
    assert sorted(model.metadata.get_input_schema().input_names()) == sorted(expected)


def test_logged_model_accepts_missing_values_and_int_columns(store: TrainedRun) -> None:
    model = load_model(store.result["model_path"])
    rows = features_of(store.workspace.raw_test().head(6))
    rows["region"] = rows["region"].astype(object)
    rows.loc[0, "region"] = None  # missing categorical
    rows.loc[1, "occupation"] = None
    rows.loc[2, "region"] = "atlantis"  # a category never seen in training
    rows["debt_ratio"] = rows["debt_ratio"].astype("float64")
    rows.loc[3, "debt_ratio"] = np.nan  # missing numeric
    rows.loc[4, "income"] = np.nan
    rows["tenure_months"] = rows["tenure_months"].fillna(0).astype("int64")  # int columns
    rows["age"] = rows["age"].astype("int32")
    out = model.predict(rows)
    assert list(out.columns) == OUTPUT_COLUMNS
    assert len(out) == 6
    assert set(out["prediction"]) <= set(CLASSES)
    proba = out[["proba_no", "proba_yes"]].to_numpy("float64")
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)


def test_logged_model_scores_a_row_with_every_value_missing(store: TrainedRun) -> None:
    model = load_model(store.result["model_path"])
    columns = [c for c in store.workspace.frame.columns if c != TARGET]
    empty = pd.DataFrame({c: pd.Series([None], dtype=object) for c in columns})
    numeric = store.workspace.frame[columns].select_dtypes("number").columns
    empty[numeric] = np.nan
    out = model.predict(empty)
    assert out["prediction"].iloc[0] in CLASSES
    assert out[["proba_no", "proba_yes"]].sum(axis=1).iloc[0] == pytest.approx(1.0, abs=1e-5)


def test_logged_model_artifacts_are_safetensors_and_json_not_pickle(
    store: TrainedRun, tmp_path: Path
) -> None:
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=store.result["model_path"], dst_path=str(tmp_path / "model")
        )
    )
    files = [p for p in local.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert "MLmodel" in names
    assert any(p.suffix == ".safetensors" for p in files), names
    assert not [p for p in files if p.suffix in {".pkl", ".pickle", ".pt", ".pth"}], names
    assert {"network.json", "transform.json"} <= names


def test_same_seed_gives_the_same_run_twice(store: TrainedRun) -> None:
    from tests.trainer.conftest import TRAINED_FLAGS

    again = train(store.workspace.data, "trainer-tests-repeat", *TRAINED_FLAGS)
    assert again["run_id"] != store.result["run_id"]
    for key in ("accuracy", "f1_score", "loss", "epochs", "hyperparameters"):
        assert again[key] == store.result[key], key
    raw = features_of(store.workspace.raw_test())
    first = load_model(store.result["model_path"]).predict(raw)
    second = load_model(again["model_path"]).predict(raw)
    pd.testing.assert_frame_equal(first, second)


def test_diverging_run_fails_cleanly_and_is_marked_failed(
    store: TrainedRun, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer.cli import main

    experiment = "trainer-tests-diverge"
    argv = ["--data-path", str(store.workspace.data), "--experiment-name", experiment,
            "--epochs", "2", "--lr", "1e6", "--optimizer", "sgd", "--batch-size", "64",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("train failed:")
    assert "--lr" in lines[0]
    assert not xcom_file.exists()
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert runs[0].info.end_time is not None
    models = mlflow.search_logged_models(
        experiment_ids=[runs[0].info.experiment_id], output_format="list"
    )
    assert models == []


def test_deterministic_mode_turns_on_deterministic_algorithms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trainer.job import make_deterministic

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        make_deterministic()
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)
