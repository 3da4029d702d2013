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
from deployer import registry
from deployer.cli import main
from tabular_model import integrity
from tests.step_failures import assert_step_fails
from tests.tabular_model.tampering import (
    CODE_COPY_MODULE,
    SERVED_MODEL,
    append_marker_code,
    replace_weights_and_their_hash,
    stored_model_folder,
)
from tests.trainer.workspace import (
    TwoRuns,
    evaluate,
    failed_run_without_model,
    features_of,
    load_model,
    log_untrained_model,
    mlflow_client,
    run_ok,
)

pytestmark = pytest.mark.integration


def deploy(run_id: str, model_name: str, *flags: str) -> dict[str, Any]:
    return run_ok("deploy", main, ["--run-id", run_id, "--model-name", model_name, *flags])


def force_deploy(run_id: str, model_name: str) -> dict[str, Any]:
    """Deploy a run that was never evaluated (a person placing a model by hand)."""
    return deploy(run_id, model_name, "--force")


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
    result = force_deploy(store.first["run_id"], model_name)
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
    force_deploy(store.first["run_id"], model_name)
    again = force_deploy(store.first["run_id"], model_name)
    assert (again["version"], again["previous_version"]) == (1, None)
    assert (again["registered"], again["alias_moved"]) == (False, False)
    assert versions(model_name) == {1: store.first["run_id"]}
    assert alias(model_name, "champion") == 1
    assert alias(model_name, "previous_champion") is None


def test_second_run_becomes_version_2_and_keeps_the_previous_champion(
    store: TwoRuns, model_name: str
) -> None:
    force_deploy(store.first["run_id"], model_name)
    result = force_deploy(store.second["run_id"], model_name)
    assert (result["action"], result["version"], result["previous_version"]) == ("deploy", 2, 1)
    assert result["run_id"] == store.second["run_id"]
    assert versions(model_name) == {1: store.first["run_id"], 2: store.second["run_id"]}
    assert alias(model_name, "champion") == 2
    assert alias(model_name, "previous_champion") == 1


def test_redeploying_the_current_champion_keeps_both_aliases(
    store: TwoRuns, model_name: str
) -> None:
    force_deploy(store.first["run_id"], model_name)
    force_deploy(store.second["run_id"], model_name)
    again = force_deploy(store.second["run_id"], model_name)
    assert (again["version"], again["previous_version"]) == (2, 1)
    assert (alias(model_name, "champion"), alias(model_name, "previous_champion")) == (2, 1)
    assert len(versions(model_name)) == 2


def test_redeploying_an_older_run_reuses_its_version(store: TwoRuns, model_name: str) -> None:
    force_deploy(store.first["run_id"], model_name)
    force_deploy(store.second["run_id"], model_name)
    back = force_deploy(store.first["run_id"], model_name)
    assert (back["version"], back["previous_version"]) == (1, 2)
    assert (alias(model_name, "champion"), alias(model_name, "previous_champion")) == (1, 2)
    assert len(versions(model_name)) == 2


def test_rollback_moves_champion_back_and_a_second_rollback_undoes_it(
    store: TwoRuns, model_name: str
) -> None:
    force_deploy(store.first["run_id"], model_name)
    force_deploy(store.second["run_id"], model_name)
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
    force_deploy(store.first["run_id"], model_name)
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
    assert_fails(["--model-name", model_name], capsys, xcom_file, "--run-id", rc=2)


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
    force_deploy(store.first["run_id"], model_name)
    force_deploy(store.second["run_id"], model_name)
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
    rc = main(["--run-id", store.first["run_id"], "--model-name", name, "--force"])
    assert rc == 0, capsys.readouterr().err[-300:]
    assert read_result("deploy")["version"] == 1
    assert alias(name, "champion") == 1


def versions_of(model_name: str) -> int:
    return len(versions(model_name))


def test_expected_champion_version_is_checked_before_anything_is_registered(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    force_deploy(store.first["run_id"], model_name)
    for expected in ("none", "7"):
        argv = ["--run-id", store.second["run_id"], "--model-name", model_name, "--force"]
        argv += ["--expected-champion-version", expected]
        shown = "none" if expected == "none" else f"v{expected}"
        assert_fails(argv, capsys, xcom_file, "champion is v1", f"expected {shown}", model_name)
    assert versions_of(model_name) == 1
    assert alias(model_name, "champion") == 1
    argv = ["--run-id", store.second["run_id"], "--model-name", model_name, "--force"]
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
    argv = ["--run-id", store.first["run_id"], "--model-name", model_name, "--force"]
    assert main([*argv, "--data-path", str(data), "--tag", "airflow.run_id=manual__1"]) == 0
    result = read_result("deploy")
    assert result["smoke_test_rows"] == len(pd.read_parquet(data / "raw" / "sample.parquet"))
    tags = mlflow_client().get_model_version(model_name, "1").tags
    assert tags["deploy.run_id"] == store.first["run_id"]
    assert tags["deploy.image"] == "example/image:7"
    assert tags["deploy.forced"] == "true"
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
    force_deploy(store.first["run_id"], model_name)
    broken = log_untrained_model(store.workspace.data)
    weights = stored_model_folder(broken) / "artifacts" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    argv = ["--run-id", broken, "--model-name", model_name, "--force"]
    # Refused by the integrity check, before it is registered.
    assert_fails(argv, capsys, xcom_file, "integrity", "weights.safetensors has sha256")
    assert versions(model_name) == {1: store.first["run_id"]}
    assert alias(model_name, "champion") == 1
    assert alias(model_name, "previous_champion") is None


@pytest.mark.parametrize("relative", [SERVED_MODEL, CODE_COPY_MODULE])
def test_a_model_whose_code_was_changed_is_refused_before_it_runs_or_is_registered(
    store: TwoRuns,
    model_name: str,
    relative: str,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A line appended to the code MLflow runs on load (as a writer of the artifact store can)
    never runs: the model's files differ from the sha256 its run recorded."""
    force_deploy(store.first["run_id"], model_name)
    changed = log_untrained_model(store.workspace.data)
    marker = tmp_path / "ran"
    append_marker_code(stored_model_folder(changed) / relative, marker)
    argv = ["--run-id", changed, "--model-name", model_name, "--force"]
    assert_fails(argv, capsys, xcom_file, f"--run-id {changed}", "integrity", relative)
    assert not marker.exists()
    assert versions(model_name) == {1: store.first["run_id"]}
    assert alias(model_name, "champion") == 1


def test_weights_changed_with_their_hash_are_refused(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = log_untrained_model(store.workspace.data)
    replace_weights_and_their_hash(stored_model_folder(changed))
    argv = ["--run-id", changed, "--model-name", model_name, "--force"]
    assert_fails(argv, capsys, xcom_file, "integrity", "MLmodel has sha256")
    assert mlflow_client().search_registered_models(f"name = '{model_name}'") == []


def test_a_rollback_to_a_version_changed_in_the_store_is_refused(
    store: TwoRuns,
    model_name: str,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The version rolled back to is checked too (its run record and its version tags)."""
    force_deploy(store.first["run_id"], model_name)
    force_deploy(store.second["run_id"], model_name)
    tags = mlflow_client().get_model_version(model_name, "1").tags
    assert tags[integrity.VERSION_MODEL_TAG] == store.first["model_path"].removeprefix("models:/")
    marker = tmp_path / "ran"
    path = stored_model_folder(store.first["run_id"]) / SERVED_MODEL
    logged = path.read_bytes()
    append_marker_code(path, marker)
    try:
        argv = ["--rollback", "--model-name", model_name]
        assert_fails(argv, capsys, xcom_file, "integrity", SERVED_MODEL, "champion not moved")
    finally:  # the store is shared by the module's tests
        path.write_bytes(logged)
    assert not marker.exists()
    assert alias(model_name, "champion") == 2


def test_a_refused_evaluation_needs_force(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate(store.first["run_id"], store.workspace.data, model_name, "--min-accuracy", "0.999")
    argv = ["--run-id", store.first["run_id"], "--model-name", model_name]
    assert_fails(argv, capsys, xcom_file, "below_floor", "--force")
    assert mlflow_client().search_registered_models(f"name = '{model_name}'") == []
    assert main([*argv, "--force"]) == 0
    assert alias(model_name, "champion") == 1


def test_a_run_never_evaluated_is_refused_unless_forced(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = store.first["run_id"]
    argv = ["--run-id", run_id, "--model-name", model_name]
    for flags in ([], ["--expected-champion-version", "none"]):
        assert_fails([*argv, *flags], capsys, xcom_file, run_id, "no evaluation", "--force")
    assert mlflow_client().search_registered_models(f"name = '{model_name}'") == []
    assert force_deploy(run_id, model_name)["version"] == 1


def test_an_evaluation_for_another_model_does_not_count(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = store.first["run_id"]
    evaluate(run_id, store.workspace.data, f"{model_name}-other", "--no-plots")
    argv = ["--run-id", run_id, "--model-name", model_name]
    assert_fails(argv, capsys, xcom_file, run_id, model_name, "no evaluation", "--force")
    assert mlflow_client().search_registered_models(f"name = '{model_name}'") == []


def test_an_evaluated_run_deploys_against_the_champion_it_was_compared_with(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = store.workspace.data
    first = evaluate(store.first["run_id"], data, model_name, "--no-plots")
    second = evaluate(store.second["run_id"], data, model_name, "--no-plots")
    assert first["champion_version"] is second["champion_version"] is None
    assert deploy(store.first["run_id"], model_name)["version"] == 1
    # The second was evaluated against no champion; champion has moved since.
    argv = ["--run-id", store.second["run_id"], "--model-name", model_name, "--force"]
    assert_fails(argv, capsys, xcom_file, "champion is v1", "expected none", "evaluate")
    assert alias(model_name, "champion") == 1


def test_a_deploy_waits_for_the_alias_lock_and_fails_naming_it(
    store: TwoRuns,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    force_deploy(store.first["run_id"], model_name)
    lock = registry.lock_name(model_name)
    mlflow_client().create_registered_model(lock)  # another deploy is moving champion
    monkeypatch.setattr(registry, "LOCK_WAIT_S", 0.5)
    argv = ["--run-id", store.second["run_id"], "--model-name", model_name, "--force"]
    assert_fails(argv, capsys, xcom_file, lock, "another deploy or rollback")
    assert (alias(model_name, "champion"), alias(model_name, "previous_champion")) == (1, None)
    assert mlflow_client().get_registered_model(lock).name == lock  # not ours to delete


def test_a_stale_alias_lock_is_broken(
    store: TwoRuns, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    force_deploy(store.first["run_id"], model_name)
    lock = registry.lock_name(model_name)
    mlflow_client().create_registered_model(lock)  # left by a deploy that was killed
    monkeypatch.setattr(registry, "LOCK_STALE_S", 0.0)
    assert force_deploy(store.second["run_id"], model_name)["version"] == 2
    assert (alias(model_name, "champion"), alias(model_name, "previous_champion")) == (2, 1)
    assert mlflow_client().search_registered_models(f"name = '{lock}'") == []


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
