"""The main job's own parts: sample data, the local config it writes, its flags, and a run on
data of the user's own. The main job on the sample (the DAG run locally) is exercised end to end
in tests/dags/test_local_run.py."""

from __future__ import annotations

import json
import re
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


def screen_lines(output: str) -> list[str]:
    return output.splitlines()


def log_path(output: str) -> Path:
    """The log file the screen names at its start (and again at its end)."""
    first, last = screen_lines(output)[0], screen_lines(output)[-1]
    assert first.startswith("log (Airflow and the steps): "), first
    path = Path(first.split(": ", 1)[1])
    assert last == f"full log: {path}"
    return path


def final_states(output: str) -> list[str]:
    """The rows of the table of every task's final state."""
    return re.findall(r"^  \S+\s+(?:success|failed|skipped|upstream_failed)$", output, re.M)


@pytest.mark.slow
@pytest.mark.integration
def test_the_main_job_runs_on_a_file_of_the_users_own(tmp_path: Path) -> None:
    """``python -m demo --source FILE --target COLUMN``: the same DAG, run on the user's CSV,
    shown on a quiet screen (task states as they change, the summary once) while Airflow's and
    the steps' logs go to the log file."""
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
    predictions = next((home / "scores").glob("*/predictions.parquet"))
    assert len(pd.read_parquet(predictions)) == 900  # the champion scored the whole file
    assert predictions.with_name("predictions.parquet.manifest.json").exists()
    check_quiet_screen(run.output)


def check_quiet_screen(output: str) -> None:
    """One line per task state change, the trial's validation metrics, the summary once, no
    log records or warnings, short lines; the full log in the file the screen names."""
    lines = screen_lines(output)
    assert re.search(r"^ +\d+s  hyperparameter_tuning\.train\[0\] +running$", output, re.M)
    trial = r"^ +\d+s  hyperparameter_tuning\.train\[0\] +success  val accuracy 0\.\d{4}  loss"
    assert re.search(trial, output, re.M)
    assert output.count("Sweep (metrics on the validation split):") == 1
    assert output.count("DAG run ") == 1
    assert not re.search(r"Warning|\[info|\[warning|INFO|WARNING", output)
    assert max(len(line) for line in lines) <= 200
    # Each task instance gives at most two lines while it runs (running, then its final state;
    # no retries here) and its row in the final table; add the summary (between the table and
    # the MLflow line) and ten fixed lines: the log path twice, the dataset, the DAG's start,
    # the run's state, the MLflow UI, blank separators. Today's log on the screen was 289
    # lines for this run, one of 4,980 characters.
    # Then the scoring DAG's run: its start, two lines for each of its two tasks, a blank
    # line and the line naming what was scored.
    tasks = len(final_states(output))
    summary = output.split("\n\nData: ", 1)[1].split("\n\nMLflow UI", 1)[0].count("\n") + 1
    scoring = 1 + 2 * 2 + 2
    assert re.search(
        r"^scored \d+ rows with demo-classifier v1: .*predictions\.parquet$", output, re.M
    )
    assert len(lines) <= 3 * tasks + summary + 10 + scoring
    assert len(lines) < 70
    log = log_path(output).read_text(encoding="utf-8")
    for step_log in ("INFO validator.job: validated", "INFO preprocess.job: preprocessed"):
        assert step_log in log
    assert "INFO common.step: train result written" in log
    assert "run summary" in log  # the summary the notify task logs stays in the file


@pytest.mark.slow
@pytest.mark.integration
def test_verbose_shows_the_steps_logs_on_the_screen(tmp_path: Path) -> None:
    """``-v``: Airflow's and the steps' logs on the screen, as with no log file. A run that
    fails in its first step keeps this quick; its failure shows on the screen too."""
    source = tmp_path / "no-label.csv"
    own_dataset().drop(columns="grade").to_csv(source, index=False)
    run = run_demo(tmp_path / "home", "--source", str(source), "--target", "grade", "-v")
    assert run.returncode == 1
    assert re.search(r"\[base\] validate failed: .*grade", run.output)  # the step's own output
    assert re.search(r"^ +\d+s  data_preparation\.validate +failed: ", run.output, re.M)
    assert "upstream_failed" in run.output
    assert "log (Airflow and the steps)" not in run.output
    assert not (tmp_path / "home" / "logs").exists()
