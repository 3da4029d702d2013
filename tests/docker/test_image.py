"""The CPU image built from Dockerfile.gpu (``make image``: buildah, no Docker engine), run the way
a user runs it with ``docker run``, here with podman: every step's ``--help``; the chain validate ->
preprocess -> train -> evaluate -> deploy, each step in a fresh container as the image's non-root
user with the data, XCom and ``PIPELINE_HOME`` folders mounted, on a read-only root filesystem;
``podman stop`` during training (SIGTERM through tini); and a bad input, which fails in the
container exactly as outside it.

The module builds the image first (``python -m tools.image``: every layer comes from the cache when
``make image`` ran before, as in CI), so what runs is the code of this checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contract.xcom import read_result
from demo.sample_data import TARGET, generate
from tools import image as image_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
APP_UID = 10001  # the image's USER
# Each step's package and the name of its result in the contract.
RESULT_STEP = {
    "validator": "validate",
    "preprocess": "preprocess",
    "trainer": "train",
    "evaluator": "evaluate",
    "deployer": "deploy",
}
MODEL_NAME = "credit-default"
FAST_TRAIN = (
    "--epochs", "2", "--batch-size", "256", "--width", "64", "--depth", "2", "--device", "cpu",
    "--system-metrics-interval", "0",
)  # fmt: skip
# Many short epochs: `podman stop` lands while training, long before the last epoch.
LONG_TRAIN = (
    "--epochs", "40", "--batch-size", "32", "--width", "32", "--depth", "1", "--patience", "100",
    "--checkpoint-every-epochs", "0", "--checkpoint-every-minutes", "0", "--device", "cpu",
    "--system-metrics-interval", "0", "--seed", "7",
)  # fmt: skip


def cannot_run_reason() -> str | None:
    """Why buildah and podman cannot build and run the image here, or None when they can."""
    if sys.platform != "linux":
        return "containers without a daemon (buildah, podman) need Linux"
    if os.geteuid() != 0:
        return "make image runs as root (mmdebstrap --mode=root, the system container storage)"
    if shutil.which("apt-get") is None and shutil.which("buildah") is None:
        return "buildah and podman are not installed and there is no apt-get to install them"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    reason = cannot_run_reason()
    if reason is not None:
        pytest.skip(reason)
    assert image_tool.main([]) == 0, "python -m tools.image failed (its output is above)"
    return image_tool.IMAGE


@dataclass(frozen=True)
class Mounts:
    """Host folders the containers share, owned by the image's user: data (/data), the XCom
    folder (/airflow/xcom) and PIPELINE_HOME (/home/app/.pipeline: the embedded MLflow store,
    checkpoints)."""

    data: Path
    xcom: Path
    home: Path

    @classmethod
    def under(cls, root: Path) -> Mounts:
        mounts = cls(data=root / "data", xcom=root / "xcom", home=root / "home")
        for folder in (mounts.data, mounts.xcom, mounts.home):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, APP_UID, APP_UID)
        return mounts

    def volumes(self) -> list[str]:
        return [
            *("-v", f"{self.data}:/data"),
            *("-v", f"{self.xcom}:/airflow/xcom"),
            *("-v", f"{self.home}:/home/app/.pipeline"),
        ]

    @property
    def result_file(self) -> Path:
        return self.xcom / "return.json"


def podman(*args: str) -> list[str]:
    return ["podman", *args]


def docker_run(image: str, mounts: Mounts, command: Sequence[str], *options: str) -> list[str]:
    """``podman run`` as a user would ``docker run`` a step: no network, a read-only root with a
    tmpfs /tmp only (as Docker: podman would add more tmpfs mounts of its own), one thread."""
    return podman(
        "run", "--rm", "--network", "none", "--read-only", "--read-only-tmpfs=false",
        "--tmpfs", "/tmp", "-e", "OMP_NUM_THREADS=1", *mounts.volumes(), *options,
        image, *command,
    )  # fmt: skip


def run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, env=image_tool.container_env(), timeout=900
    )


def run_step(image: str, mounts: Mounts, step: str, *argv: str) -> dict[str, Any]:
    """Run ``python -m <step>`` in a fresh container; its result, read from the host and
    validated against the step's published schema."""
    mounts.result_file.unlink(missing_ok=True)
    done = run(docker_run(image, mounts, ["python", "-m", step, *argv]))
    assert done.returncode == 0, (step, done.stdout[-3000:], done.stderr)
    return read_result(RESULT_STEP[step], mounts.result_file)


@pytest.fixture(scope="module")
def prepared(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    """Sample data validated and preprocessed, each in its own container."""
    mounts = Mounts.under(tmp_path_factory.mktemp("image"))
    frame = generate(3000, seed=11)
    frame.to_parquet(mounts.data / "credit.parquet", index=False)
    source = ["--source", "/data/credit.parquet", "--target", TARGET, "--date", "2024-05-01"]
    validated = run_step(image, mounts, "validator", *source)
    assert validated["row_count"] == len(frame)
    assert validated["anomaly_counts"]["error"] == 0
    argv = ["--input", validated["source"], "--output", "/data/processed", "--target", TARGET]
    prepared = run_step(image, mounts, "preprocess", *argv)
    assert prepared["output_uri"] == "/data/processed"
    assert sum(prepared["row_counts"].values()) == len(frame)
    assert (mounts.data / "processed").is_dir()
    yield mounts


def test_every_step_prints_its_help(image: str) -> None:
    steps = [*RESULT_STEP, "scorer"] if (REPO / "scorer").is_dir() else list(RESULT_STEP)
    for step in steps:
        done = run(podman("run", "--rm", "--network", "none", image, "python", "-m", step, "-h"))
        assert done.returncode == 0, (step, done.stderr)
        assert done.stdout.startswith("usage: python -m "), (step, done.stdout[:200])
    default = run(podman("run", "--rm", "--network", "none", image))  # CMD: the trainer's help
    assert default.returncode == 0 and "--data-path" in default.stdout


def test_runs_as_the_non_root_user_on_a_read_only_root(image: str, tmp_path: Path) -> None:
    mounts = Mounts.under(tmp_path)
    script = "id -u; touch /tmp/ok && echo tmp-writable; touch /opt/venv/x || echo root-read-only"
    done = run(docker_run(image, mounts, ["sh", "-c", script]))
    assert done.stdout.split() == [str(APP_UID), "tmp-writable", "root-read-only"], done.stderr
    assert "Read-only file system" in done.stderr


def test_chain_train_evaluate_deploy_in_fresh_containers(image: str, prepared: Mounts) -> None:
    data = ["--data-path", "/data/processed"]
    trained = run_step(image, prepared, "trainer", *data, "--experiment-name", "image", *FAST_TRAIN)
    assert trained["epochs"] == 2
    # The MLflow store is the embedded one under the mounted PIPELINE_HOME.
    assert (prepared.home / "mlflow" / "mlflow.db").is_file()

    gate = ["--model-name", MODEL_NAME, "--min-accuracy", "0.5"]
    verdict = run_step(image, prepared, "evaluator", "--run-id", trained["run_id"], *data, *gate)
    assert (verdict["should_deploy"], verdict["reason"]) == (True, "first_model")
    assert verdict["new_accuracy"] == pytest.approx(trained["accuracy"], abs=0.1)

    # A later container loads (and smoke-tests) the model the trainer's container logged.
    argv = ["--run-id", verdict["run_id"], "--model-name", verdict["model_name"]]
    deployed = run_step(image, prepared, "deployer", *argv)
    assert (deployed["version"], deployed["alias"]) == (1, "champion")
    assert deployed["run_id"] == trained["run_id"]


def test_podman_stop_checkpoints_and_the_same_command_resumes(
    image: str, prepared: Mounts, tmp_path: Path
) -> None:
    mounts = Mounts(data=prepared.data, xcom=tmp_path / "xcom", home=tmp_path / "home")
    Mounts.under(tmp_path)  # this test's own XCom folder and store
    name = f"train-{uuid.uuid4().hex[:12]}"
    trainer = ["python", "-m", "trainer", "--data-path", "/data/processed"]
    command = docker_run(
        image, mounts, [*trainer, "--experiment-name", "stopped", *LONG_TRAIN], "--name", name
    )
    rc, out, err = stop_after_first_epoch(command, name)
    assert rc == 143, (out[-3000:], err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("train failed: training stopped on request at epoch"), err
    assert not mounts.result_file.exists()
    assert len(list((mounts.home / "checkpoints").glob("*/latest.json"))) == 1
    [(run_id, status)] = store_runs(image, mounts)
    assert status == "KILLED"

    resumed = run(command)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    result = read_result("train", mounts.result_file)
    assert result["resumed"] is True
    assert result["run_id"] == run_id  # the same MLflow run, continued
    assert store_runs(image, mounts) == [[run_id, "FINISHED"]]


# Prints the runs of the embedded store under PIPELINE_HOME: [[run_id, status], ...].
LIST_RUNS = """
import json
from common.tracking import configure_mlflow
client = configure_mlflow().MlflowClient()
runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
print(json.dumps([[r.info.run_id, r.info.status] for r in runs]))
"""


def store_runs(image: str, mounts: Mounts) -> list[list[str]]:
    """The runs in the embedded MLflow store the containers keep in the mounted PIPELINE_HOME,
    read by the image's own MLflow (the host's may be another release)."""
    done = run(docker_run(image, mounts, ["python", "-c", LIST_RUNS]))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def stop_after_first_epoch(command: Sequence[str], name: str) -> tuple[int, str, str]:
    """Start the container, ``podman stop`` it once it logged its first epoch (SIGTERM to tini,
    which forwards it); its exit status, stdout and stderr."""
    env = image_tool.container_env()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if " epoch 1/40 " in line:
                stopped = run(podman("stop", "--time", "120", name))
                assert stopped.returncode == 0, stopped.stderr
                break
        out, err = proc.communicate(timeout=300)
        return proc.returncode, "".join(seen) + out, err


@pytest.mark.parametrize(
    ("step", "argv"),
    [
        ("validator", ["--source", "/data/nowhere.parquet", "--target", TARGET]),
        ("trainer", ["--data-path", "/data/processed", "--no-such-flag"]),
    ],
    ids=["missing-file", "usage-error"],
)
def test_bad_input_fails_as_outside_the_container(
    image: str, tmp_path: Path, step: str, argv: list[str]
) -> None:
    mounts = Mounts.under(tmp_path / "container")
    termination_log = tmp_path / "termination-log"
    termination_log.touch()
    os.chown(termination_log, APP_UID, APP_UID)
    inside = run(
        docker_run(
            image,
            mounts,
            ["python", "-m", step, *argv],
            "-v",
            f"{termination_log}:/dev/termination-log",
        )
    )
    outside = subprocess.run(
        [sys.executable, "-m", step, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={
            **os.environ,
            "XCOM_RETURN_PATH": str(tmp_path / "host" / "xcom" / "return.json"),
            "PIPELINE_HOME": str(tmp_path / "host" / "home"),
            "TERMINATION_LOG_PATH": str(tmp_path / "host" / "no-termination-log"),
        },
    )
    assert outside.returncode in (1, 2), outside.stderr
    assert (inside.returncode, inside.stderr) == (outside.returncode, outside.stderr)
    line = inside.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith(f"{RESULT_STEP[step]} failed: "), line
    assert termination_log.read_text() == line + "\n"
    assert not mounts.result_file.exists()
