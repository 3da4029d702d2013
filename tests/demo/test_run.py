"""The main job's own parts: sample data, the local config it writes, its flags. The main job
itself (the DAG run locally) is exercised end to end in tests/dags/test_local_run.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from tabular_pipeline.config import load_config

from demo.run import main, write_local_config
from demo.sample_data import TARGET, generate


def test_sample_data_is_deterministic_with_missing_values() -> None:
    first, second = generate(500, seed=3), generate(500, seed=3)
    assert first.equals(second)
    assert not first.equals(generate(500, seed=4))
    assert first.isna().any().any()
    assert set(first["default"]) == {"yes", "no"}


def test_local_config_is_the_cluster_config_with_local_launcher_and_folders(
    tmp_path: Path,
) -> None:
    path = write_local_config(tmp_path, str(tmp_path / "data/{{ ds }}/x.parquet"), "m")
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
