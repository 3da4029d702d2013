"""The main job's own parts: sample data, the local config it writes, its flags, and a run on
data of the user's own. The main job on the sample (the DAG run locally) is exercised end to end
in tests/dags/test_local_run.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tabular_pipeline.config import load_config

from demo.run import Dataset, main, write_local_config
from demo.sample_data import TARGET, generate
from tests.dags.conftest import run_demo


def test_sample_data_is_deterministic_with_missing_values() -> None:
    first, second = generate(500, seed=3), generate(500, seed=3)
    assert first.equals(second)
    assert not first.equals(generate(500, seed=4))
    assert first.isna().any().any()
    assert set(first["default"]) == {"yes", "no"}


def test_local_config_is_the_cluster_config_with_local_launcher_and_folders(
    tmp_path: Path,
) -> None:
    data = Dataset(str(tmp_path / "data/{{ ds }}/x.parquet"), TARGET)
    path = write_local_config(tmp_path, data, "m")
    config = load_config(path)
    assert config.launcher == "local"
    assert config.secrets == ()
    assert config.data.root == str(tmp_path / "runs")
    assert config.data.volume_claim is None
    assert config.data.target == TARGET
    assert config.env == {"PIPELINE_HOME": str(tmp_path)}
    assert config.model_name == "m"
    # Everything about the pods themselves stays as in the cluster config.
    cluster = load_config(Path(__file__).resolve().parents[2] / "dags" / "tabular_training.yaml")
    assert config.gpu == cluster.gpu
    assert config.resources == cluster.resources
    assert config.image == cluster.image


def test_bad_conf_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "--conf", "{not json"]) == 2
    assert "--conf: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "data.csv"], "--source and --target go together"),
        (["--target", "label"], "--source and --target go together"),
        (["--source", "absent.csv", "--target", "label"], "--source absent.csv: no such file"),
    ],
)
def test_own_data_flags_are_checked_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["--home", str(tmp_path / "home"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def own_dataset(rows: int = 900) -> pd.DataFrame:
    """A three-class table with columns the sample does not have."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 2))
    colour = rng.choice(["red", "green", "blue"], size=rows)
    score = x[:, 0] + np.where(colour == "red", 1.0, 0.0)
    label = np.select([score < -0.5, score < 0.7], ["low", "mid"], "high")
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "colour": colour, "grade": label})


@pytest.mark.slow
@pytest.mark.integration
def test_the_main_job_runs_on_a_file_of_the_users_own(tmp_path: Path) -> None:
    """``python -m demo --source FILE --target COLUMN``: the same DAG, run on the user's CSV."""
    source = tmp_path / "grades.csv"
    own_dataset().to_csv(source, index=False)
    sweep = {"search_space": {"lr": [0.003], "width": [32], "epochs": [1]}}
    home = tmp_path / "home"
    run = run_demo(home, "--source", str(source), "--target", "grade", "--conf", json.dumps(sweep))
    assert run.returncode == 0, run.output[-3000:]
    assert f"from {source} (0 warnings)" in run.output
    prepared = run.result("data_preparation.preprocess")
    assert (prepared["target"], sorted(prepared["classes"])) == ("grade", ["high", "low", "mid"])
    assert sum(prepared["row_counts"].values()) == 900
    assert run.result("evaluate")["reason"] == "first_model"
    assert "Deployed: demo-classifier version 1 is now @champion" in run.output
