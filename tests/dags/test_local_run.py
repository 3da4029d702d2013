"""The whole DAG, run locally with real Airflow (``dag.test()``) by the main job: both branches,
a failed sweep member tolerated, every pod rendered by the provider and valid for Kubernetes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
from tabular_pipeline.results import require_result

from .conftest import DAG_ID, LocalRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KUBERNETES_VERSION = "1.33"
POD_STEPS = {
    "data_preparation.validate": "validate",
    "data_preparation.preprocess": "preprocess",
    "evaluate": "evaluate",
    "deploy": "deploy",
}


def task_states(run: LocalRun) -> dict[str, str]:
    """``task[index] -> state`` from the table the main job prints."""
    return dict(
        re.findall(r"^  (\S+)\s+(success|failed|skipped|upstream_failed)$", run.output, re.M)
    )


def test_first_run_trains_the_sweep_and_deploys(local_runs: tuple[LocalRun, LocalRun]) -> None:
    run, _ = local_runs
    assert run.returncode == 0, run.output[-4000:]
    assert f"DAG run {run.run_root.name}: success" in run.output
    states = task_states(run)
    assert {f"hyperparameter_tuning.train[{i}]" for i in range(4)} <= set(states)
    assert states["deploy"] == "success"
    assert states["skip_deploy"] == "skipped"
    assert states["notify"] == "success"
    assert "<- best" in run.output
    assert "-> deploy (first_model)" in run.output
    assert "Deployed: demo-classifier version 1 is now @champion (previous: None)" in run.output
    # The first run's schema is inferred and kept for every later run of the DAG.
    validated = run.result("data_preparation.validate")
    assert validated["schema_origin"] == "data"
    assert validated["schema_uri"] == str(run.run_root.parent / "schema.json")  # the store
    assert validated["drift"] is None  # no champion to compare with yet
    assert (run.run_root.parent / "schema.json").is_file()
    assert f"Validation report: {validated['html_report_uri']}" in run.output


def test_second_run_tolerates_a_failed_trial_and_skips_a_weak_candidate(
    local_runs: tuple[LocalRun, LocalRun],
) -> None:
    _, run = local_runs
    assert run.returncode == 0, run.output[-4000:]
    states = task_states(run)
    assert states["hyperparameter_tuning.train[0]"] == "success"
    assert states["hyperparameter_tuning.train[1]"] == "failed"
    assert states["select_best"] == "success"
    assert states["deploy"] == "skipped"
    assert states["skip_deploy"] == "success"
    assert states["notify"] == "success"
    # The failed trial was retried (local config: one retry) before being tolerated.
    tries = sorted(
        p.name for p in (run.run_root / "pods" / "hyperparameter_tuning.train.1").iterdir()
    )
    assert tries == ["try-1", "try-2"]
    assert (
        "dropout" in (run.run_root / "pods/hyperparameter_tuning.train.1/try-2/log.txt").read_text()
    )
    decision = run.result("evaluate")
    assert decision["reason"] == "below_floor"
    assert decision["champion_version"] == 1  # compared with the first run's champion
    assert re.search(r"^  1 .* failed$", run.output, re.M)
    # Checked against the schema the first run stored.
    validated = run.result("data_preparation.validate")
    assert validated["schema_origin"] == "store"
    assert validated["schema_uri"] == str(run.run_root.parent / "schema.json")
    # Drift against the data the champion (the first run's model) was trained on: the same file.
    assert validated["drift"]["reference_uri"] == validated["source"]
    assert validated["drift"]["drifted_count"] == 0


def test_runs_write_only_under_their_own_run_folder(local_runs: tuple[LocalRun, LocalRun]) -> None:
    first, second = local_runs
    assert first.run_root != second.run_root
    assert first.run_root.parent.name == DAG_ID
    for run in local_runs:
        assert {"validate", "preprocess", "pods"} <= {p.name for p in run.run_root.iterdir()}
        prepared = run.result("data_preparation.preprocess")
        assert prepared["output_uri"] == str(run.run_root / "preprocess")
        trainer_pod = run.run_root / "pods/hyperparameter_tuning.train.0/try-1/pod.json"
        args = json.loads(trainer_pod.read_text())["spec"]["containers"][0]["args"]
        assert args[args.index("--data-path") + 1] == str(run.run_root / "preprocess")
        checkpoints = Path(args[args.index("--checkpoint-dir") + 1])
        assert checkpoints == run.run_root / "train" / "trial-0" / "checkpoints"


def test_every_pod_is_valid_for_kubernetes_and_its_result_meets_the_contract(
    local_runs: tuple[LocalRun, LocalRun],
) -> None:
    checked = 0
    for run in local_runs:
        for workdir in run.pods():
            pod = json.loads((workdir / "pod.json").read_text())
            kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
            task = workdir.parent.name
            step = POD_STEPS.get(task, "train")
            result_path = workdir / "xcom" / "return.json"
            if result_path.exists():
                require_result(step, json.loads(result_path.read_text()), task)
                checked += 1
            names = {c["name"] for c in pod["spec"]["containers"]}
            assert names == {"base", "airflow-xcom-sidecar"}
    # 2 data + 4 trials + evaluate + deploy, then 2 data + 1 trial + evaluate.
    assert checked == 12


def test_the_local_pod_is_the_rendered_cluster_pod(local_runs: tuple[LocalRun, LocalRun]) -> None:
    """Same command, image, resources and GPU placement as in the cluster; only paths differ."""
    run, _ = local_runs
    pod = json.loads(
        (run.run_root / "pods/hyperparameter_tuning.train.0/try-1/pod.json").read_text()
    )
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "trainer"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["metadata"]["labels"]["dag_id"] == DAG_ID
    assert pod["metadata"]["labels"]["map_index"] == "0"
    assert Path(container["args"][container["args"].index("--data-path") + 1]).is_dir()
