"""``deployer.cli.main``: register a run's model once, move ``champion`` (keeping
``previous_champion``), and roll back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.tracking import MLFLOW_ENV_DEFAULTS, configure_mlflow
from contract.xcom import read_result
from deployer.cli import main
from tests.step_failures import assert_step_fails
from tests.trainer.workspace import (
    TwoRuns,
    deploy,
    evaluate,
    failed_run_without_model,
    features_of,
    load_model,
    log_untrained_model,
    mlflow_client,
    stored_model_file,
)

pytestmark = pytest.mark.integration


def rollback(model_name: str) -> dict[str, Any]:
    assert main(["--rollback", "--model-name", model_name]) == 0
    return read_result("deploy")


def alias(model_name: str, name: str) -> int | None:
    aliases = mlflow_client().get_registered_model(model_name).aliases
    return int(aliases[name]) if name in aliases else None


def versions(model_name: str) -> dict[int, str]:
    """Registered versions of ``model_name`` and the run each came from."""
    found = mlflow_client().search_model_versions(f"name = '{model_name}'")
    return {int(v.version): v.run_id for v in found}


def assert_fails(
    argv: list[str], capsys: pytest.CaptureFixture[str], xcom: Path, *needles: str, rc: int = 1
) -> str:
    return assert_step_fails(main, "deploy", argv, capsys, xcom, *needles, rc=rc)


def test_first_deploy_creates_version_1_as_champion(store: TwoRuns, model_name: str) -> None:
    result = deploy(store.first["run_id"], model_name)
    rows = result.pop("smoke_test_rows")
    assert result == {
        "schema_version": 1, "action": "deploy", "model_name": model_name, "version": 1,
        "alias": "champion", "previous_version": None, "run_id": store.first["run_id"],
        "registered": True, "alias_moved": True,
    }  # fmt: skip
    assert rows == len(load_model(store.first["model_path"]).input_example)
    assert versions(model_name) == {1: store.first["run_id"]}
    assert alias(model_name, "champion") == 1
    assert alias(model_name, "previous_champion") is None


def test_redeploying_the_same_run_creates_no_second_version(
    store: TwoRuns, model_name: str
) -> None:
    deploy(store.first["run_id"], model_name)
    again = deploy(store.first["run_id"], model_name)
    assert (again["version"], again["previous_version"]) == (1, None)
    assert (again["registered"], again["alias_moved"]) == (False, False)
    assert versions(model_name) == {1: store.first["run_id"]}
    assert alias(model_name, "champion") == 1
    assert alias(model_name, "previous_champion") is None


def test_second_run_becomes_version_2_and_keeps_the_previous_champion(
    store: TwoRuns, model_name: str
) -> None:
    deploy(store.first["run_id"], model_name)
    result = deploy(store.second["run_id"], model_name)
    assert (result["action"], result["version"], result["previous_version"]) == ("deploy", 2, 1)
    assert result["run_id"] == store.second["run_id"]
    assert versions(model_name) == {1: store.first["run_id"], 2: store.second["run_id"]}
    assert alias(model_name, "champion") == 2
    assert alias(model_name, "previous_champion") == 1


def test_redeploying_the_current_champion_keeps_both_aliases(
    store: TwoRuns, model_name: str
) -> None:
    deploy(store.first["run_id"], model_name)
    deploy(store.second["run_id"], model_name)
    again = deploy(store.second["run_id"], model_name)
    assert (again["version"], again["previous_version"]) == (2, 1)
    assert (alias(model_name, "champion"), alias(model_name, "previous_champion")) == (2, 1)
    assert len(versions(model_name)) == 2


def test_redeploying_an_older_run_reuses_its_version(store: TwoRuns, model_name: str) -> None:
    deploy(store.first["run_id"], model_name)
    deploy(store.second["run_id"], model_name)
    back = deploy(store.first["run_id"], model_name)
    assert (back["version"], back["previous_version"]) == (1, 2)
    assert (alias(model_name, "champion"), alias(model_name, "previous_champion")) == (1, 2)
    assert len(versions(model_name)) == 2


def test_rollback_moves_champion_back_and_a_second_rollback_undoes_it(
    store: TwoRuns, model_name: str
) -> None:
    deploy(store.first["run_id"], model_name)
    deploy(store.second["run_id"], model_name)
    result = rollback(model_name)
    assert result.pop("smoke_test_rows") > 0
    assert result == {
        "schema_version": 1, "action": "rollback", "model_name": model_name, "version": 1,
        "alias": "champion", "previous_version": 2, "run_id": store.first["run_id"],
        "registered": False, "alias_moved": True,
    }  # fmt: skip
    assert (alias(model_name, "champion"), alias(model_name, "previous_champion")) == (1, 2)
    undo = rollback(model_name)
    assert (undo["version"], undo["previous_version"]) == (2, 1)
    assert undo["run_id"] == store.second["run_id"]
    assert (alias(model_name, "champion"), alias(model_name, "previous_champion")) == (2, 1)
    assert len(versions(model_name)) == 2


def test_rollback_without_previous_champion_fails_clearly(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy(store.first["run_id"], model_name)
    argv = ["--rollback", "--model-name", model_name]
    assert_fails(argv, capsys, xcom_file, model_name, "previous_champion", "roll back")
    assert alias(model_name, "champion") == 1


def test_rollback_of_an_unknown_model_fails_clearly(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--rollback", "--model-name", model_name]
    assert_fails(argv, capsys, xcom_file, model_name, "previous_champion")


def test_deploy_without_run_id_fails(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_fails(["--model-name", model_name], capsys, xcom_file, "--run-id")


def test_unknown_run_id_fails_and_registers_nothing(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = "fedcba9876543210fedcba9876543210"
    argv = ["--run-id", run_id, "--model-name", model_name]
    assert_fails(argv, capsys, xcom_file, run_id, store.workspace.tracking_uri)
    assert mlflow_client().search_registered_models(f"name = '{model_name}'") == []


def test_missing_model_name_is_a_usage_error(
    xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_fails(["--run-id", "abc"], capsys, xcom_file, "--model-name", rc=2)


def test_champion_loads_without_pickle_and_predicts(store: TwoRuns, model_name: str) -> None:
    deploy(store.first["run_id"], model_name)
    deploy(store.second["run_id"], model_name)
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    raw = features_of(store.workspace.raw_test())
    champion = load_model(f"models:/{model_name}@champion").predict(raw)
    candidate = load_model(store.second["model_path"]).predict(raw)
    np.testing.assert_array_equal(champion.to_numpy(), candidate.to_numpy())
    assert set(champion["prediction"]) <= {"yes", "no"}


def test_run_without_a_model_fails_and_registers_nothing(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = failed_run_without_model()
    argv = ["--run-id", run_id, "--model-name", model_name]
    assert_fails(argv, capsys, xcom_file, run_id, "no model")


def test_model_name_with_an_apostrophe(store: TwoRuns, capsys: pytest.CaptureFixture[str]) -> None:
    name = "team's model"
    mlflow_client().create_registered_model(name)  # MLflow accepts the name
    capsys.readouterr()
    rc = main(["--run-id", store.first["run_id"], "--model-name", name])
    assert rc == 0, capsys.readouterr().err[-300:]
    assert read_result("deploy")["version"] == 1
    assert alias(name, "champion") == 1


def versions_of(model_name: str) -> int:
    return len(versions(model_name))


def test_expected_champion_version_is_checked_before_anything_is_registered(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy(store.first["run_id"], model_name)
    for expected in ("none", "7"):
        argv = ["--run-id", store.second["run_id"], "--model-name", model_name]
        argv += ["--expected-champion-version", expected]
        shown = "none" if expected == "none" else f"v{expected}"
        assert_fails(argv, capsys, xcom_file, "champion is v1", f"against {shown}", model_name)
    assert versions_of(model_name) == 1
    assert alias(model_name, "champion") == 1
    argv = ["--run-id", store.second["run_id"], "--model-name", model_name]
    assert main([*argv, "--expected-champion-version", "1"]) == 0
    assert alias(model_name, "champion") == 2


@pytest.mark.parametrize("value", ["abc", "0", "-1", ""])
def test_a_malformed_expected_version_is_a_usage_error(
    value: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--run-id", "r", "--model-name", "m", "--expected-champion-version", value]
    assert_fails(argv, capsys, xcom_file, "--expected-champion-version", rc=2)


def test_smoke_test_on_the_data_paths_sample_rows_and_version_tags(
    store: TwoRuns, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABULAR_PIPELINE_IMAGE", "example/image:7")
    data = store.workspace.data
    argv = ["--run-id", store.first["run_id"], "--model-name", model_name]
    assert main([*argv, "--data-path", str(data), "--tag", "airflow.run_id=manual__1"]) == 0
    result = read_result("deploy")
    assert result["smoke_test_rows"] == len(pd.read_parquet(data / "raw" / "sample.parquet"))
    tags = mlflow_client().get_model_version(model_name, "1").tags
    assert tags["deploy.run_id"] == store.first["run_id"]
    assert tags["deploy.image"] == "example/image:7"
    assert tags["airflow.run_id"] == "manual__1"


def test_a_bad_data_path_fails_before_the_registry_is_touched(
    store: TwoRuns,
    model_name: str,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--run-id", store.first["run_id"], "--model-name", model_name]
    assert_fails([*argv, "--data-path", str(tmp_path / "nope")], capsys, xcom_file, "nope")
    assert mlflow_client().search_registered_models(f"name = '{model_name}'") == []


def test_a_version_failing_the_smoke_test_does_not_become_champion(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy(store.first["run_id"], model_name)
    broken = log_untrained_model(store.workspace.data)
    weights = stored_model_file(broken, "weights.safetensors")
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    argv = ["--run-id", broken, "--model-name", model_name]
    assert_fails(argv, capsys, xcom_file, "smoke test", "champion not moved", "sha256")
    assert alias(model_name, "champion") == 1
    assert alias(model_name, "previous_champion") is None


def test_a_refused_evaluation_needs_force(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate(store.first["run_id"], store.workspace.data, model_name, "--min-accuracy", "0.999")
    argv = ["--run-id", store.first["run_id"], "--model-name", model_name]
    assert_fails(argv, capsys, xcom_file, "below_floor", "--force")
    assert mlflow_client().search_registered_models(f"name = '{model_name}'") == []
    assert main([*argv, "--force"]) == 0
    assert alias(model_name, "champion") == 1


def test_mlflow_retries_are_bounded_by_default_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in MLFLOW_ENV_DEFAULTS:
        monkeypatch.setenv(name, "placeholder")  # so that teardown restores the original
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
    configure_mlflow()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"
    assert int(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]) < 120  # MLflow's own default
    assert int(os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]) < 2
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
