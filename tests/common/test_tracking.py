"""Where MLflow lives and how reaching it fails: credentials in a URI never reach a message, a
log line or the termination log; one request to a server that never answers ends within a stated
bound; a run's logged model is found unambiguously."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from common import tracking
from common.redaction import redact_uri
from common.step import StepError
from tests.common.hung_server import hung_server
from tests.trainer.workspace import log_untrained_model
from tools.servers import FAST_FAILING_CLIENT, free_port

SECRET = "s3cr3t-Pa55"

# One attempt and one retry of one second each, no backoff: a bound of 2 s.
TIGHT_CLIENT = {**FAST_FAILING_CLIENT, "MLFLOW_HTTP_REQUEST_TIMEOUT": "1"}


def use_client(monkeypatch: pytest.MonkeyPatch, uri: str, settings: dict[str, str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


def with_password(url: str) -> str:
    return url.replace("//", f"//pipeline:{SECRET}@", 1)


def shown(url: str) -> str:
    """How ``with_password(url)`` appears in messages."""
    return url.replace("//", "//***@", 1)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"http://pipeline:{SECRET}@mlflow:5000", "http://***@mlflow:5000"),
        (f"https://{SECRET}@mlflow.example/path", "https://***@mlflow.example/path"),
        (f"postgresql://user:{SECRET}@db/mlflow", "postgresql://***@db/mlflow"),
        (f"http://u:p@{SECRET}@h:1/x", "http://***@h:1/x"),  # an unescaped @ in the password
        (f"http://h:5000/?token={SECRET}", "http://h:5000/?token=***"),
        (f"http://h/x?a=1&access_token={SECRET}&b=2", "http://h/x?a=1&access_token=***&b=2"),
        (f"s3://b/k?X-Amz-Signature={SECRET}", "s3://b/k?X-Amz-Signature=***"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////tmp/home/mlflow/mlflow.db", "sqlite:////tmp/home/mlflow/mlflow.db"),
        ("s3://bucket/runs/ckpt", "s3://bucket/runs/ckpt"),
        (
            f"API request to http://pipeline:{SECRET}@127.0.0.1:9/api/2.0/mlflow/runs/get failed",
            "API request to http://***@127.0.0.1:9/api/2.0/mlflow/runs/get failed",
        ),
    ],
)
def test_redact_uri_masks_user_information_and_tokens(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


def test_the_default_settings_bound_one_request_to_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in tracking.MLFLOW_ENV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    tracking.configure_mlflow()
    # 5 attempts of 8 s, backoff 0 + 2 + 4 + 8 s, jitter at most 1 s on each of the last three.
    assert tracking.request_bound_seconds() == 57.0
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")  # the environment still wins
    assert tracking.request_bound_seconds() == 5 * 30 + 14 + 3


def test_a_retry_setting_that_is_not_a_number_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "soon")
    with pytest.raises(StepError, match="MLFLOW_HTTP_REQUEST_TIMEOUT='soon'"):
        tracking.request_bound_seconds()


def test_a_server_that_never_answers_fails_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with hung_server() as server:
        use_client(monkeypatch, with_password(server.url), TIGHT_CLIENT)
        start = time.monotonic()
        with pytest.raises(StepError) as failure, tracking.reaching_mlflow():
            tracking.ensure_experiment("hung")
        elapsed = time.monotonic() - start
        assert server.accepted == 2, "one attempt and one retry"
    assert tracking.request_bound_seconds() == 2.0
    assert 2.0 <= elapsed < 2.0 + 5.0  # the bound, plus slack for a busy machine
    message = str(failure.value)
    assert message.startswith(f"cannot reach MLflow at {shown(server.url)} ")
    assert SECRET not in message


@pytest.mark.parametrize(
    "uri",
    [f"http://pipeline:{SECRET}@127.0.0.1:{{port}}", f"http://127.0.0.1:{{port}}/?token={SECRET}"],
)
def test_a_secret_in_the_tracking_uri_stays_out_of_the_deployers_output(
    monkeypatch: pytest.MonkeyPatch,
    isolated_env: Path,
    capsys: pytest.CaptureFixture[str],
    uri: str,
) -> None:
    """``python -m deployer`` against a closed port: the reason names the server, not its
    password, on stderr, in the log and in the termination log."""
    from deployer.cli import main

    use_client(monkeypatch, uri.format(port=free_port()), FAST_FAILING_CLIENT)
    termination_log = isolated_env / "termination-log"
    termination_log.touch()  # as Kubernetes provides it
    assert main(["--model-name", "m", "--run-id", "r"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("deploy failed: cannot reach MLflow at http://"), err
    assert "***" in err
    assert termination_log.read_text() == err
    assert SECRET not in out + err


@pytest.mark.slow
def test_the_trainer_fails_within_the_bound_without_printing_the_secret(
    monkeypatch: pytest.MonkeyPatch,
    isolated_env: Path,
    preprocessed: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.trainer.workspace import FAST_TRAIN_FLAGS
    from trainer.cli import main

    argv = ["--data-path", str(preprocessed), "--experiment-name", "hung", *FAST_TRAIN_FLAGS]
    termination_log = isolated_env / "termination-log"
    termination_log.touch()
    with hung_server() as server:
        use_client(monkeypatch, with_password(server.url), TIGHT_CLIENT)
        capsys.readouterr()
        assert main([*argv, "--system-metrics-interval", "0"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"train failed: cannot reach MLflow at {shown(server.url)} "), err
    assert termination_log.read_text() == err
    assert SECRET not in out + err
    assert not (isolated_env / "xcom" / "return.json").exists()


def logged_models(run_id: str, statuses: list[str]) -> list[str]:
    """Log one model named ``model`` per status into run ``run_id`` (no artifacts)."""
    mlflow = tracking.configure_mlflow()
    run = mlflow.get_run(run_id)
    ids = []
    for status in statuses:
        model = mlflow.initialize_logged_model(
            name="model", source_run_id=run_id, experiment_id=run.info.experiment_id
        )
        if status != "PENDING":
            mlflow.finalize_logged_model(model.model_id, status)
        ids.append(model.model_id)
    return ids


def new_run() -> str:
    client = tracking.configure_mlflow().MlflowClient()
    return str(client.create_run(tracking.ensure_experiment("models")).info.run_id)


def test_run_model_uri_takes_the_one_finished_model(isolated_env: Path) -> None:
    run_id = new_run()
    _, ready, _ = logged_models(run_id, ["FAILED", "READY", "PENDING"])
    assert tracking.run_model_uri(run_id) == f"models:/{ready}"
    assert tracking.logged_model_uri(run_id) == f"models:/{ready}"


def test_run_model_uri_refuses_a_run_holding_two_models_of_the_name(isolated_env: Path) -> None:
    run_id = new_run()
    first, second = logged_models(run_id, ["READY", "READY"])
    with pytest.raises(StepError, match=f"run {run_id} holds 2 finished models named 'model'"):
        tracking.run_model_uri(run_id)
    with pytest.raises(StepError, match=f"{first}.*{second}|{second}.*{first}"):
        tracking.logged_model_uri(run_id)


def test_a_run_without_a_finished_model(isolated_env: Path) -> None:
    run_id = new_run()
    assert tracking.logged_model_uri(run_id) is None
    logged_models(run_id, ["FAILED"])
    assert tracking.logged_model_uri(run_id) is None
    with pytest.raises(StepError, match=f"--run-id {run_id}: the run logged no model named"):
        tracking.run_model_uri(run_id)


def test_the_embedded_stores_artifacts_stay_under_pipeline_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wherever the step runs: not in ./mlruns of its working directory."""
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    experiment_id = tracking.ensure_experiment("kept-at-home")
    location = tracking.configure_mlflow().MlflowClient().get_experiment(experiment_id)
    home = Path(os.environ["PIPELINE_HOME"]).resolve()
    assert location.artifact_location == (home / "mlflow" / "artifacts").as_uri()
    assert not (elsewhere / "mlruns").exists()


@pytest.mark.integration
@pytest.mark.parametrize("store", ["embedded", "database URI"])
def test_a_model_logged_from_any_folder_leaves_nothing_there(
    store: str, tmp_path: Path, preprocessed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the embedded store nor a database in MLFLOW_TRACKING_URI (no server to choose
    an artifact root) puts a run's or a logged model's files into ./mlruns of the working
    directory: they go under $PIPELINE_HOME/mlflow/artifacts."""
    if store == "database URI":
        database = tmp_path / "elsewhere" / "mlflow.db"
        database.parent.mkdir()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    cwd = tmp_path / "empty-cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    run_id = log_untrained_model(preprocessed)
    assert sorted(cwd.iterdir()) == []
    model_id = tracking.run_model_uri(run_id).removeprefix("models:/")
    location = tracking.configure_mlflow().get_logged_model(model_id).artifact_location
    home = Path(os.environ["PIPELINE_HOME"]).resolve()
    assert location.startswith((home / "mlflow" / "artifacts").as_uri() + "/"), location
