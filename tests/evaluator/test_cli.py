"""``evaluator.cli.main``: score the candidate and the champion on the raw test rows, decide, and
record the decision on the candidate's run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

import evaluator.job
from common.evaluation_record import recorded_evaluation
from common.storage import fingerprint
from common.tracking import configure_mlflow, run_model_uri
from demo.sample_data import TARGET
from evaluator.cli import main
from tabular_model.integrity import version_tags
from tests.step_failures import assert_step_fails
from tests.tabular_model.tampering import (
    CODE_COPY_MODULE,
    SERVED_MODEL,
    append_marker_code,
    stored_model_folder,
)
from tests.trainer.workspace import (
    CANDIDATES_EXPERIMENT,
    TwoRuns,
    evaluate,
    failed_run_without_model,
    features_of,
    load_model,
    log_untrained_model,
    mlflow_client,
    preprocess,
    run_ok,
    stored_model_file,
    train,
)
from tools.servers import FAST_FAILING_CLIENT, free_port

pytestmark = pytest.mark.integration


def deploy(run_id: str, model_name: str) -> dict[str, Any]:
    """Make ``run_id``'s model the champion (``--force``: the gate is not what these tests are
    about)."""
    from deployer.cli import main as deploy_main

    argv = ["--run-id", run_id, "--model-name", model_name, "--force"]
    return run_ok("deploy", deploy_main, argv)


def independent_test_metrics(store: TwoRuns, model_uri: str) -> tuple[float, float]:
    """Accuracy and F1 ("yes" positive) of a model on raw/test.parquet, computed here."""
    raw = store.workspace.raw_test()
    predicted = load_model(model_uri).predict(features_of(raw))["prediction"]
    truth = raw[TARGET]
    accuracy = float((predicted.to_numpy() == truth.to_numpy()).mean())
    return accuracy, float(f1_score(truth, predicted, pos_label="yes", zero_division=0))


def evaluator_argv(run_id: str, data: Path | str, model_name: str) -> list[str]:
    return ["--run-id", run_id, "--data-path", str(data), "--model-name", model_name]


def assert_fails(
    argv: list[str], capsys: pytest.CaptureFixture[str], xcom: Path, *needles: str, rc: int = 1
) -> str:
    return assert_step_fails(main, "evaluate", argv, capsys, xcom, *needles, rc=rc)


def test_first_model_without_champion(store: TwoRuns, model_name: str) -> None:
    run = store.first
    result = evaluate(run["run_id"], store.workspace.data, model_name)
    assert result["should_deploy"] is True
    assert result["reason"] == "first_model"
    assert result["baseline_accuracy"] is None
    assert result["improvement"] is None
    assert result["champion_version"] is None
    assert result["run_id"] == run["run_id"]
    assert result["model_path"] == run["model_path"]
    assert result["model_name"] == model_name
    assert result["test_rows"] == len(store.workspace.raw_test())
    accuracy, f1 = independent_test_metrics(store, run["model_path"])
    assert result["new_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert result["new_f1_score"] == pytest.approx(f1, abs=1e-12)
    assert result["metrics"]["accuracy"] == result["new_accuracy"]
    assert (result["improvement_low"], result["improvement_high"]) == (None, None)
    assert result["baseline_metrics"] is None and result["baseline_worst_slice"] is None
    assert result["champion_problem"] is None
    assert result["data_fingerprint"] == fingerprint(str(store.workspace.data / "raw/test.parquet"))


def test_roc_auc_and_slices_match_an_independent_computation(
    store: TwoRuns, model_name: str
) -> None:
    run = store.first
    result = evaluate(run["run_id"], store.workspace.data, model_name, "--min-slice-size", "40")
    raw = store.workspace.raw_test()
    out = load_model(run["model_path"]).predict(features_of(raw))
    truth = (raw[TARGET] == "yes").to_numpy()
    assert result["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(truth, out["proba_yes"]))
    correct = out["prediction"].to_numpy() == raw[TARGET].to_numpy()
    worst = result["worst_slice"]
    in_slice = (
        raw[worst["column"]].astype("string").fillna("<missing>") == worst["value"]
    ).to_numpy()
    assert worst["rows"] == in_slice.sum() >= 40
    assert worst["accuracy"] == pytest.approx(correct[in_slice].mean())
    for column in ("region", "education", "contract_type", "occupation"):
        for value, group in pd.Series(correct).groupby(raw[column].to_numpy()):
            if len(group) >= 40:
                assert group.mean() >= worst["accuracy"], (column, value)


def test_slices_smaller_than_the_minimum_are_ignored(store: TwoRuns, model_name: str) -> None:
    rows = str(len(store.workspace.raw_test()) + 1)
    result = evaluate(
        store.first["run_id"], store.workspace.data, model_name, "--min-slice-size", rows
    )
    assert result["worst_slice"] is None


def test_the_interval_is_the_same_on_a_rerun_and_follows_the_seed(
    store: TwoRuns, model_name: str
) -> None:
    deploy(store.first["run_id"], model_name)
    argv = (store.second["run_id"], store.workspace.data, model_name, "--no-plots")
    first, again = evaluate(*argv), evaluate(*argv)
    assert first == again
    wide = evaluate(*argv, "--confidence", "0.999", "--bootstrap-samples", "500")
    assert wide["confidence"] == 0.999 and wide["bootstrap_samples"] == 500
    assert wide["improvement_low"] <= first["improvement_low"]
    assert wide["improvement_high"] >= first["improvement_high"]


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--confidence", "1.0"),
        ("--confidence", "0"),
        ("--bootstrap-samples", "0"),
        ("--min-slice-size", "0"),
        ("--min-accuracy", "1.5"),
        ("--slice-tolerance", "-0.1"),
        ("--calibration-tolerance", "2"),
    ],
)
def test_out_of_range_flags_are_refused(
    flag: str, value: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*evaluator_argv("r", "d", "m"), flag, value]
    assert_fails(argv, capsys, xcom_file, flag, value, rc=2)


def test_test_metrics_and_decision_are_recorded_on_the_run(store: TwoRuns, model_name: str) -> None:
    run_id = store.second["run_id"]
    result = evaluate(run_id, store.workspace.data, model_name)
    data = mlflow_client().get_run(run_id).data
    assert data.metrics["test_accuracy"] == result["new_accuracy"]
    assert data.metrics["test_f1_score"] == result["new_f1_score"]
    for name in ("roc_auc", "log_loss", "brier_score", "ece"):
        assert data.metrics[f"test_{name}"] == result["metrics"][name]
    assert data.tags["evaluation.reason"] == "first_model"
    assert data.tags["evaluation.should_deploy"] == "True"
    assert data.tags["evaluation.model_name"] == model_name
    assert data.tags["evaluation.champion_version"] == "none"
    assert data.tags["evaluation.data_fingerprint"] == result["data_fingerprint"]
    recorded = recorded_evaluation(run_id)
    assert recorded is not None and recorded.model_dump(mode="json") == result
    # The validation metrics of training are kept, not overwritten by the test metrics.
    assert data.metrics["accuracy"] == store.second["accuracy"]


def test_second_run_is_compared_with_the_deployed_champion(store: TwoRuns, model_name: str) -> None:
    first = evaluate(store.first["run_id"], store.workspace.data, model_name)
    assert deploy(store.first["run_id"], model_name)["version"] == 1
    second = evaluate(store.second["run_id"], store.workspace.data, model_name)
    assert second["champion_version"] == 1
    assert second["baseline_accuracy"] == first["new_accuracy"]
    assert second["improvement"] == pytest.approx(second["new_accuracy"] - first["new_accuracy"])
    assert second["baseline_metrics"] == first["metrics"]
    assert second["improvement_low"] <= second["improvement"] <= second["improvement_high"]
    if second["improvement_low"] <= 0:
        assert (second["should_deploy"], second["reason"]) == (False, "not_better")
    accuracy, _ = independent_test_metrics(store, store.second["model_path"])
    assert second["new_accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_the_champion_against_itself_is_a_tie_and_not_better(
    store: TwoRuns, model_name: str
) -> None:
    deploy(store.first["run_id"], model_name)
    result = evaluate(store.first["run_id"], store.workspace.data, model_name)
    assert result["baseline_accuracy"] == result["new_accuracy"]
    assert result["improvement"] == 0.0
    assert (result["improvement_low"], result["improvement_high"]) == (0.0, 0.0)
    assert (result["should_deploy"], result["reason"]) == (False, "not_better")
    assert result["champion_version"] == 1
    assert result["baseline_worst_slice"] == result["worst_slice"]


def test_min_improvement_out_of_reach_is_not_better(store: TwoRuns, model_name: str) -> None:
    deploy(store.first["run_id"], model_name)
    result = evaluate(
        store.second["run_id"], store.workspace.data, model_name, "--min-improvement", "1.0"
    )
    assert (result["should_deploy"], result["reason"]) == (False, "not_better")
    assert result["baseline_accuracy"] is not None


def test_min_accuracy_floor(store: TwoRuns, model_name: str) -> None:
    result = evaluate(
        store.first["run_id"], store.workspace.data, model_name, "--min-accuracy", "0.999"
    )
    assert (result["should_deploy"], result["reason"]) == (False, "below_floor")
    assert result["new_accuracy"] < 0.999
    assert mlflow_client().get_run(store.first["run_id"]).data.tags["evaluation.reason"] == (
        "below_floor"
    )


def test_min_accuracy_floor_with_a_champion(store: TwoRuns, model_name: str) -> None:
    deploy(store.first["run_id"], model_name)
    result = evaluate(
        store.second["run_id"], store.workspace.data, model_name, "--min-accuracy", "0.999"
    )
    assert (result["should_deploy"], result["reason"]) == (False, "below_floor")
    assert result["champion_version"] == 1
    assert result["improvement"] == pytest.approx(
        result["new_accuracy"] - result["baseline_accuracy"]
    )


def test_champion_with_other_labels_is_incompatible(
    store: TwoRuns, model_name: str, tmp_path: Path
) -> None:
    frame = store.workspace.frame.assign(**{TARGET: (store.workspace.frame[TARGET] == "yes")})
    other = train(preprocess(frame.astype({TARGET: "int64"}), tmp_path), CANDIDATES_EXPERIMENT)
    deploy(other["run_id"], model_name)
    result = evaluate(store.first["run_id"], store.workspace.data, model_name)
    assert (result["should_deploy"], result["reason"]) == (False, "baseline_incompatible")
    assert result["champion_version"] == 1
    assert result["baseline_accuracy"] is None
    assert result["improvement"] is None
    assert f"models:/{model_name}/1" in result["champion_problem"]


def test_champion_needing_a_column_the_data_lacks_is_incompatible(
    store: TwoRuns, model_name: str, tmp_path: Path
) -> None:
    frame = store.workspace.frame.assign(extra=1.5)
    other = train(preprocess(frame, tmp_path), CANDIDATES_EXPERIMENT)
    deploy(other["run_id"], model_name)
    result = evaluate(store.first["run_id"], store.workspace.data, model_name)
    assert (result["should_deploy"], result["reason"]) == (False, "baseline_incompatible")
    assert result["champion_version"] == 1


def test_unknown_run_id_names_the_run_and_the_tracking_uri(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = "0123456789abcdef0123456789abcdef"
    argv = evaluator_argv(run_id, str(store.workspace.data), model_name)
    assert_fails(argv, capsys, xcom_file, run_id, store.workspace.tracking_uri)


def test_run_without_a_model(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = failed_run_without_model()
    argv = evaluator_argv(run_id, str(store.workspace.data), model_name)
    assert_fails(argv, capsys, xcom_file, run_id, "no model")


def test_incomplete_data_path(
    store: TwoRuns,
    model_name: str,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = evaluator_argv(store.first["run_id"], str(tmp_path / "none"), model_name)
    assert_fails(argv, capsys, xcom_file, str(tmp_path / "none"), "manifest.json")


def test_empty_test_rows(
    store: TwoRuns,
    model_name: str,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(store.workspace.data, data)
    raw_test = data / "raw" / "test.parquet"
    pd.read_parquet(raw_test).iloc[:0].to_parquet(raw_test, index=False)
    argv = evaluator_argv(store.first["run_id"], str(data), model_name)
    assert_fails(argv, capsys, xcom_file, "raw/test.parquet", "no rows")


def test_missing_model_name_is_a_usage_error(
    xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_fails(["--run-id", "r", "--data-path", "d"], capsys, xcom_file, "--model-name", rc=2)


def log_model_predicting_nan(data: Path) -> str:
    """Log, as a new run's model, a served model whose weights are all NaN: it loads, passes
    its checksums and predicts NaN probabilities for every row. Returns the run id."""
    return log_untrained_model(data, CANDIDATES_EXPERIMENT, fill=float("nan"))


def make_champion(run_id: str, model_name: str) -> None:
    """Register ``run_id``'s model and point ``champion`` at it in the registry itself: a
    champion that broke after it was deployed (the deployer's smoke test refuses NaN)."""
    mlflow = configure_mlflow()
    model_uri = run_model_uri(run_id)
    tags = version_tags(model_uri.removeprefix("models:/"), run_id)
    version = mlflow.register_model(model_uri, model_name, tags=tags).version
    mlflow.MlflowClient().set_registered_model_alias(model_name, "champion", version)


def evaluate_against_champion(
    store: TwoRuns, model_name: str, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """Evaluate the first run, which must succeed; its result."""
    from contract.xcom import read_result

    rc = main(evaluator_argv(store.first["run_id"], store.workspace.data, model_name))
    assert rc == 0, capsys.readouterr().err[-500:]
    return read_result("evaluate")


def test_a_tampered_champion_is_unusable_and_left_to_a_person(
    store: TwoRuns, model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    champion = log_untrained_model(store.workspace.data)
    deploy(champion, model_name)
    weights = stored_model_file(champion, "weights.safetensors")
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    result = evaluate_against_champion(store, model_name, capsys)
    assert (result["should_deploy"], result["reason"]) == (False, "champion_unusable")
    assert (result["champion_version"], result["baseline_accuracy"]) == (1, None)
    problem = result["champion_problem"]
    assert f"models:/{model_name}/1" in problem and "sha256" in problem, problem
    assert problem in capsys.readouterr().out  # the log says it too
    tags = mlflow_client().get_run(store.first["run_id"]).data.tags
    assert tags["evaluation.reason"] == "champion_unusable"


def test_a_champion_predicting_nan_is_unusable_not_a_crash(
    store: TwoRuns, model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_champion(log_model_predicting_nan(store.workspace.data), model_name)
    result = evaluate_against_champion(store, model_name, capsys)
    assert (result["should_deploy"], result["reason"]) == (False, "champion_unusable")
    assert result["champion_version"] == 1
    assert "NaN" in result["champion_problem"], result["champion_problem"]


def test_the_registry_going_down_while_the_champion_loads_fails_the_step(
    store: TwoRuns,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The registry answers until the champion is loaded, then is down for that one call:
    the step fails (to be retried), rather than recording the champion as incompatible."""
    deploy(store.first["run_id"], model_name)
    for name, value in FAST_FAILING_CLIENT.items():
        monkeypatch.setenv(name, value)
    down = f"http://127.0.0.1:{free_port()}"
    load = evaluator.job.load_verified_model

    def load_while_down(model_uri: str) -> Any:
        if not model_uri.startswith(f"models:/{model_name}"):
            return load(model_uri)
        try:
            with monkeypatch.context() as down_now:
                down_now.setenv("MLFLOW_TRACKING_URI", down)
                configure_mlflow()
                return load(model_uri)
        finally:
            configure_mlflow()  # the registry is back

    monkeypatch.setattr(evaluator.job, "load_verified_model", load_while_down)
    argv = evaluator_argv(store.second["run_id"], store.workspace.data, model_name)
    assert_fails(argv, capsys, xcom_file, "cannot reach MLflow", down.removeprefix("http://"))
    tags = mlflow_client().get_run(store.second["run_id"]).data.tags
    assert tags.get("evaluation.model_name") != model_name  # nothing recorded


def test_a_candidate_predicting_nan_fails_the_step_naming_the_run(
    store: TwoRuns, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = log_model_predicting_nan(store.workspace.data)
    argv = evaluator_argv(run_id, store.workspace.data, model_name)
    line = assert_fails(argv, capsys, xcom_file, f"--run-id {run_id}", "NaN")
    assert "ValueError" not in line, line


@pytest.mark.parametrize("relative", [SERVED_MODEL, CODE_COPY_MODULE])
def test_a_candidate_whose_code_was_changed_fails_the_step_before_it_runs(
    store: TwoRuns,
    model_name: str,
    relative: str,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A line appended (in the artifact store) to the code MLflow runs on load never runs."""
    run_id = log_untrained_model(store.workspace.data)
    marker = tmp_path / "ran"
    append_marker_code(stored_model_folder(run_id) / relative, marker)
    argv = evaluator_argv(run_id, store.workspace.data, model_name)
    assert_fails(argv, capsys, xcom_file, f"--run-id {run_id}", "integrity check", relative)
    assert not marker.exists()


def test_a_champion_whose_code_was_changed_is_unusable_and_never_runs(
    store: TwoRuns, model_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    champion = log_untrained_model(store.workspace.data)
    make_champion(champion, model_name)
    marker = tmp_path / "ran"
    append_marker_code(stored_model_folder(champion) / SERVED_MODEL, marker)
    result = evaluate_against_champion(store, model_name, capsys)
    assert (result["should_deploy"], result["reason"]) == (False, "champion_unusable")
    assert "integrity" in result["champion_problem"], result["champion_problem"]
    assert SERVED_MODEL in result["champion_problem"]
    assert not marker.exists()


def test_a_champion_registered_without_an_integrity_record_is_unusable(
    store: TwoRuns, model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A version registered past the deployer (no integrity tags) is not trusted."""
    champion = log_untrained_model(store.workspace.data)
    mlflow = configure_mlflow()
    version = mlflow.register_model(run_model_uri(champion), model_name).version
    mlflow.MlflowClient().set_registered_model_alias(model_name, "champion", version)
    result = evaluate_against_champion(store, model_name, capsys)
    assert result["reason"] == "champion_unusable"
    assert "no integrity record" in result["champion_problem"], result["champion_problem"]
