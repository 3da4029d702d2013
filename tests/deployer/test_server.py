"""Evaluate and deploy against a real ``mlflow server`` (sqlite backend, artifacts served by the
server): the first model, a better one, a worse one, a rerun, a concurrent promotion, rollback,
and the server being down.

Two candidates, trained once per module on the server: ``strong`` learns the sample data;
``weak`` learns it with the labels swapped, so it is clearly worse on the real test rows (about
0.3 against 0.7 accuracy), which makes every decision below certain rather than a coin toss."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from demo.sample_data import TARGET
from deployer.cli import main as deploy_main
from evaluator.cli import main as evaluate_main
from tests.deployer.racing import race
from tests.mlflow_server import mlflow_server
from tests.step_failures import assert_step_fails
from tests.trainer.workspace import (
    Workspace,
    build_workspace,
    evaluate,
    log_untrained_model,
    mlflow_client,
    preprocess,
    run_ok,
    train,
    workspace_env,
)
from tools.servers import MlflowServer, free_port

__all__ = ["mlflow_server"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPERIMENT = "server-candidates"
IMAGE = "registry.example/tabular-gpu-pipeline:1.2.3"


@dataclass(frozen=True)
class Candidates:
    server: MlflowServer
    workspace: Workspace
    weak: str  # run ids
    strong: str


@pytest.fixture(scope="module")
def candidates(
    mlflow_server: MlflowServer,
    tmp_path_factory: pytest.TempPathFactory,
    sample_frame: pd.DataFrame,
) -> Iterator[Candidates]:
    root = tmp_path_factory.mktemp("server-runs")
    with workspace_env(root), pytest.MonkeyPatch.context() as mp:
        mlflow_server.use(mp)
        workspace = build_workspace(root, sample_frame)
        swapped = sample_frame.assign(
            **{TARGET: sample_frame[TARGET].map({"yes": "no", "no": "yes"})}
        )
        weak = train(preprocess(swapped, root / "swapped"), EXPERIMENT, "--seed", "3")
        strong = train(workspace.data, EXPERIMENT, "--lr", "3e-3", "--seed", "5")
    yield Candidates(mlflow_server, workspace, weak["run_id"], strong["run_id"])


@pytest.fixture
def runs(candidates: Candidates, monkeypatch: pytest.MonkeyPatch) -> Candidates:
    candidates.server.use(monkeypatch)
    monkeypatch.setenv("TABULAR_PIPELINE_IMAGE", IMAGE)
    return candidates


def deploy(run_id: str, model_name: str, *flags: str) -> dict[str, Any]:
    return run_ok("deploy", deploy_main, ["--run-id", run_id, "--model-name", model_name, *flags])


def judge(runs: Candidates, run_id: str, model_name: str, *flags: str) -> dict[str, Any]:
    """Evaluate without plots (drawing them costs seconds; one test checks them)."""
    return evaluate(run_id, runs.workspace.data, model_name, "--no-plots", *flags)


def evaluate_and_deploy(runs: Candidates, run_id: str, model_name: str) -> dict[str, Any]:
    """What the DAG does: evaluate, then deploy with the champion the evaluation compared."""
    verdict = judge(runs, run_id, model_name)
    assert verdict["should_deploy"], verdict["reason"]
    expected = str(verdict["champion_version"] or "none")
    return deploy(run_id, model_name, "--expected-champion-version", expected)


def aliases(model_name: str) -> dict[str, int]:
    found = mlflow_client().get_registered_model(model_name).aliases
    return {name: int(version) for name, version in found.items()}


def version_count(model_name: str) -> int:
    return len(mlflow_client().search_model_versions(f"name = '{model_name}'"))


def test_first_model_is_promoted(runs: Candidates, model_name: str) -> None:
    verdict = judge(runs, runs.weak, model_name)
    assert (verdict["should_deploy"], verdict["reason"]) == (True, "first_model")
    assert verdict["champion_version"] is None
    result = deploy(runs.weak, model_name, "--expected-champion-version", "none")
    assert (result["version"], result["previous_version"], result["registered"]) == (1, None, True)
    assert result["smoke_test_rows"] > 0
    assert aliases(model_name) == {"champion": 1}


def test_better_model_is_promoted_and_the_decision_is_on_the_version(
    runs: Candidates, model_name: str
) -> None:
    evaluate_and_deploy(runs, runs.weak, model_name)
    verdict = evaluate(runs.strong, runs.workspace.data, model_name)
    assert (verdict["should_deploy"], verdict["reason"]) == (True, "promoted")
    logged = {f.path for f in mlflow_client().list_artifacts(runs.strong, "evaluation")}
    assert logged >= {
        f"evaluation/{name}"
        for name in ("result.json", "slices.json", "confusion_matrix.png", "roc_curve.png",
                     "pr_curve.png", "calibration_curve.png")
    }  # fmt: skip
    assert verdict["improvement_low"] > 0.2  # clearly better, not a coin toss
    assert verdict["champion_version"] == 1
    result = deploy(runs.strong, model_name, "--expected-champion-version", "1")
    assert (result["version"], result["previous_version"]) == (2, 1)
    assert aliases(model_name) == {"champion": 2, "previous_champion": 1}
    tags = mlflow_client().get_model_version(model_name, "2").tags
    assert tags["deploy.run_id"] == runs.strong
    assert tags["deploy.image"] == IMAGE
    assert "deploy.forced" not in tags
    assert tags["evaluation.reason"] == "promoted"
    assert tags["evaluation.champion_version"] == "1"
    assert tags["evaluation.data_fingerprint"] == verdict["data_fingerprint"]
    assert float(tags["evaluation.improvement_low"]) == verdict["improvement_low"]
    assert float(tags["evaluation.test_accuracy"]) == verdict["new_accuracy"]


def test_worse_model_is_refused(
    runs: Candidates, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate_and_deploy(runs, runs.strong, model_name)
    verdict = judge(runs, runs.weak, model_name)
    assert (verdict["should_deploy"], verdict["reason"]) == (False, "not_better")
    assert verdict["improvement_high"] < 0
    # Deploying it anyway is refused on the strength of the evaluation recorded on the run.
    argv = ["--run-id", runs.weak, "--model-name", model_name]
    assert_step_fails(deploy_main, "deploy", argv, capsys, xcom_file, "not_better", "--force")
    assert version_count(model_name) == 1
    assert aliases(model_name) == {"champion": 1}


def test_rerun_creates_no_second_version(runs: Candidates, model_name: str) -> None:
    first = evaluate_and_deploy(runs, runs.weak, model_name)
    again = deploy(runs.weak, model_name, "--expected-champion-version", "none")
    assert (again["version"], again["registered"], again["alias_moved"]) == (1, False, False)
    assert first["registered"] is True
    assert version_count(model_name) == 1
    assert aliases(model_name) == {"champion": 1}


def test_concurrent_promotion_is_refused(
    runs: Candidates, model_name: str, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two candidates evaluated while there is no champion; the first deploy wins, the second
    finds champion moved since its evaluation and registers nothing."""
    assert judge(runs, runs.weak, model_name)["champion_version"] is None
    assert judge(runs, runs.strong, model_name)["champion_version"] is None
    deploy(runs.strong, model_name, "--expected-champion-version", "none")
    for flags in ([], ["--expected-champion-version", "none"]):
        argv = ["--run-id", runs.weak, "--model-name", model_name, *flags]
        line = assert_step_fails(deploy_main, "deploy", argv, capsys, xcom_file, "champion is v1")
        assert "evaluate the candidate again" in line
    assert version_count(model_name) == 1
    assert aliases(model_name) == {"champion": 1}


@pytest.mark.parametrize(
    ("evaluated", "in_turn"),
    [(False, True), (False, False), (True, False)],
    ids=["never-evaluated-in-turn", "never-evaluated-at-once", "evaluated-at-once"],
)
def test_two_deploys_started_together_move_champion_once(
    runs: Candidates, model_name: str, tmp_path: Path, evaluated: bool, in_turn: bool
) -> None:
    """Two candidates deployed at the same moment against the same champion (v1), each
    compared with the champion it read when it started (never evaluated, ``--force``) or with
    the one its evaluation compared against, moving champion at the same instant or one after
    the other: exactly one moves champion; the other fails naming the version it expected and
    the one it found."""
    deploy(log_untrained_model(runs.workspace.data, EXPERIMENT), model_name, "--force")
    if evaluated:
        for run_id in (runs.weak, runs.strong):
            assert judge(runs, run_id, model_name)["champion_version"] == 1
    argvs = [
        ["--run-id", run_id, "--model-name", model_name, "--force"]
        for run_id in (runs.weak, runs.strong)
    ]
    outcomes = race(argvs, tmp_path, in_turn)
    assert sorted(o.exit_code or 0 for o in outcomes) == [0, 1], outcomes
    won, lost = sorted(outcomes, key=lambda o: o.exit_code or 0)
    assert won.result is not None and lost.result is None
    assert (won.result["previous_version"], won.result["alias_moved"]) == (1, True)
    assert aliases(model_name) == {"champion": won.result["version"], "previous_champion": 1}
    assert f"champion is v{won.result['version']}" in lost.failure, lost.failure
    assert "expected v1" in lost.failure, lost.failure
    assert version_count(model_name) == 3  # both registered before either moved champion


def test_rollback_returns_to_the_previous_champion(runs: Candidates, model_name: str) -> None:
    evaluate_and_deploy(runs, runs.weak, model_name)
    evaluate_and_deploy(runs, runs.strong, model_name)
    result = run_ok("deploy", deploy_main, ["--rollback", "--model-name", model_name])
    assert (result["action"], result["version"], result["previous_version"]) == ("rollback", 1, 2)
    assert result["run_id"] == runs.weak
    assert result["smoke_test_rows"] > 0
    assert aliases(model_name) == {"champion": 1, "previous_champion": 2}
    # The next evaluation compares against the rolled-back champion.
    assert judge(runs, runs.strong, model_name)["champion_version"] == 1


def test_server_down_fails_fast_naming_the_tracking_uri_and_registers_nothing(
    runs: Candidates,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    data = str(runs.workspace.data)
    argv = ["--run-id", runs.strong, "--data-path", data, "--model-name", model_name]
    assert_step_fails(evaluate_main, "evaluate", argv, capsys, xcom_file, down, "cannot reach")
    for argv in (
        ["--run-id", runs.strong, "--model-name", model_name],
        ["--rollback", "--model-name", model_name],
    ):
        assert_step_fails(deploy_main, "deploy", argv, capsys, xcom_file, down, "cannot reach")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", runs.server.uri)
    assert mlflow_client().search_registered_models(f"name = '{model_name}'") == []
