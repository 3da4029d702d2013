"""``--reference models:/NAME@ALIAS``: drift against the raw data the model version behind the
alias was trained on, followed through a real (embedded sqlite) MLflow registry and the
preprocess manifest; no version yet, an overwritten source and a broken form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.tracking import configure_mlflow
from contract.xcom import read_result
from demo.sample_data import TARGET
from tests.validator.loopback import http_server
from validator.cli import main

MODEL = "churn"
REFERENCE = f"models:/{MODEL}@champion"
__all__ = ["http_server"]  # a fixture used here


def validate(source: Path, out: Path, reference: str = REFERENCE) -> int:
    argv = ["--source", str(source), "--target", TARGET, "--output", str(out)]
    return main([*argv, "--reference", reference, "--max-plots", "0"])


def anomalies(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "anomalies.json").read_text())["anomalies"]  # type: ignore[no-any-return]


@pytest.fixture
def champion(preprocessed: Path) -> str:
    """Version 1 of the model, trained (as the registry records it) on ``preprocessed``, holds
    the champion alias; returns its run id."""
    mlflow = configure_mlflow()
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("validate-reference")
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "data_path", str(preprocessed))
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    version = client.create_model_version(
        MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(MODEL, "champion", version.version)
    return str(run.info.run_id)


def test_drift_is_measured_against_the_champions_training_data(
    champion: str, sample_parquet: Path, sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path
) -> None:
    shifted = sample_frame.assign(age=sample_frame["age"] + 2)
    source = tmp_path / "today.parquet"
    shifted.to_parquet(source, index=False)
    out = tmp_path / "check"
    assert validate(source, out) == 0
    drift = read_result("validate", xcom_file)["drift"]
    assert drift["reference_uri"] == str(sample_parquet)
    assert drift["max_psi_column"] == "age"
    document = json.loads((out / "anomalies.json").read_text())
    assert document["reference"] == str(sample_parquet)
    assert document["reference_note"] == (
        f"training data of {REFERENCE} (version 1, run {champion})"
    )
    assert "(version 1, run " in (out / "report.html").read_text()


def test_no_champion_yet_means_no_drift_and_no_anomaly(
    sample_parquet: Path, tmp_path: Path, xcom_file: Path
) -> None:
    out = tmp_path / "check"
    assert validate(sample_parquet, out) == 0
    result = read_result("validate", xcom_file)
    assert result["drift"] is None
    assert result["anomaly_counts"] == {"error": 0, "warning": 0}
    document = json.loads((out / "anomalies.json").read_text())
    assert document["reference"] is None
    assert "no version of 'churn' has alias 'champion' yet" in document["reference_note"]


def test_a_source_overwritten_since_training_is_not_compared_with(
    champion: str, sample_parquet: Path, sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path
) -> None:
    rng = np.random.default_rng(3)
    sample_frame.sample(frac=1.0, random_state=rng).to_parquet(sample_parquet, index=False)
    out = tmp_path / "check"
    assert validate(sample_parquet, out) == 0  # a warning, not a failure
    result = read_result("validate", xcom_file)
    assert result["drift"] is None
    assert result["anomaly_counts"] == {"error": 0, "warning": 1}
    (anomaly,) = anomalies(out)
    assert (anomaly["check"], anomaly["severity"]) == ("reference_unusable", "warning")
    assert f"was trained on {sample_parquet} (sha256 " in anomaly["description"]
    assert "now holds other data" in anomaly["description"]


def test_a_missing_training_source_is_a_warning(
    champion: str, sample_parquet: Path, sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    today = tmp_path / "today.parquet"
    sample_frame.to_parquet(today, index=False)
    sample_parquet.unlink()
    out = tmp_path / "check"
    assert validate(today, out) == 0
    (anomaly,) = anomalies(out)
    assert anomaly["check"] == "reference_unusable"
    assert f"was trained on {sample_parquet} (sha256 " in anomaly["description"]
    assert "which is gone" in anomaly["description"]


def test_none_turns_the_comparison_off(
    champion: str, sample_parquet: Path, tmp_path: Path, xcom_file: Path
) -> None:
    assert validate(sample_parquet, tmp_path / "check", reference="none") == 0
    assert read_result("validate", xcom_file)["drift"] is None


def test_a_malformed_model_reference_is_refused(
    sample_parquet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A usage error (exit 2), found before the registry or any data is read.
    assert validate(sample_parquet, tmp_path / "check", reference=f"models:/{MODEL}") == 2
    assert "--reference 'models:/churn': write a model as models:/NAME@ALIAS" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("where", ["data_path", "source"])
def test_a_registry_pointing_at_a_url_is_not_followed(
    where: str,
    champion: str,
    preprocessed: Path,
    sample_parquet: Path,
    tmp_path: Path,
    http_server: tuple[str, list[str]],
) -> None:
    """The registry and the manifest are followed only to storage locations: a data_path or a
    recorded source that is a URL is a warning, and the URL is never contacted."""
    url, requests = http_server
    if where == "data_path":
        client = configure_mlflow().MlflowClient()
        run = client.create_run(client.create_experiment("elsewhere"))
        client.log_param(run.info.run_id, "data_path", f"{url}/processed")
        version = client.create_model_version(MODEL, "runs:/x/model", run_id=run.info.run_id)
        client.set_registered_model_alias(MODEL, "champion", version.version)
    else:
        manifest = preprocessed / "manifest.json"
        document = json.loads(manifest.read_text())
        document["source"] = f"{url}/raw.parquet"
        manifest.write_text(json.dumps(document))
    out = tmp_path / "check"
    assert validate(sample_parquet, out) == 0
    (anomaly,) = anomalies(out)
    assert anomaly["check"] == "reference_unusable"
    assert "not a storage location" in anomaly["description"]
    assert requests == []
