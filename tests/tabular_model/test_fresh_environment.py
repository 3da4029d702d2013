"""The logged model in a new virtual environment holding only what the model declares
(its ``requirements.txt``) and none of the project: ``mlflow.pyfunc.load_model`` on the model's
folder predicts what the project's own environment predicts.

The environment is built once per test session in a temporary folder and removed at its end.
torch is installed as the CPU build first, the way the Makefile does (pip's configured
indexes/find-links, else PyTorch's CPU index): the model pins ``torch==X``, which the ``X+cpu``
build satisfies, while an unpinned resolver would pull the CUDA build (several GB)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.tabular_model.served import LoggedModel, logged_model

__all__ = ["logged_model"]  # the module-scoped fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
INSTALL_TIMEOUT_S = 1500

PREDICT = """
import importlib.util, sys
import pandas as pd
names = ("tabular_model", "common", "trainer", "evaluator", "contract", "tests")
found = [n for n in names if importlib.util.find_spec(n)]
assert not found, f"project packages importable before loading: {found}"
import mlflow, torch
assert torch.__version__.endswith("+cpu"), torch.__version__
model = mlflow.pyfunc.load_model(sys.argv[1])
import tabular_model
assert tabular_model.__file__.startswith(sys.argv[1]), tabular_model.__file__
model.predict(pd.read_parquet(sys.argv[2])).to_parquet(sys.argv[3])
"""


@dataclass(frozen=True)
class FreshEnv:
    python: Path
    seconds: float  # how long creating it and installing the requirements took


def clean_env() -> dict[str, str]:
    """This process's environment without what would put the project or its venv in reach."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def pip_install(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # --no-compile: bytecode is written on first import instead (torch alone has thousands of
    # modules, and this environment runs one script).
    command = [str(python), "-m", "pip", "install", "--quiet", "--no-compile", *args]
    return subprocess.run(
        command, env=clean_env(), capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
    )


def create(folder: Path, requirements: Path) -> FreshEnv:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, env=clean_env())
    python = folder / "bin" / "python"
    torch_pin = next(
        line for line in requirements.read_text().split() if line.startswith("torch==")
    )
    cpu_torch = f"{torch_pin}+cpu"
    done = pip_install(python, cpu_torch)
    if done.returncode != 0:
        done = pip_install(python, "--index-url", TORCH_CPU_INDEX, cpu_torch)
    assert done.returncode == 0, f"installing {cpu_torch}: {done.stderr[-3000:]}"
    done = pip_install(python, "-r", str(requirements))
    assert done.returncode == 0, f"installing {requirements}: {done.stderr[-3000:]}"
    return FreshEnv(python, time.perf_counter() - started)


@pytest.fixture(scope="module")
def fresh_env(
    logged_model: LoggedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FreshEnv]:
    folder = tmp_path_factory.mktemp("fresh-venv")
    try:
        yield create(folder / "venv", logged_model.model_dir / "requirements.txt")
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # about 1.7 GB


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 300)
def test_the_model_predicts_alike_in_an_environment_of_its_requirements_only(
    fresh_env: FreshEnv,
    logged_model: LoggedModel,
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    import mlflow

    record_property("fresh_env_seconds", round(fresh_env.seconds, 1))
    print(f"fresh environment created and installed in {fresh_env.seconds:.0f} s")
    rows = logged_model.rows.head(200)
    rows.to_parquet(tmp_path / "rows.parquet")
    expected = mlflow.pyfunc.load_model(str(logged_model.model_dir)).predict(rows)
    done = subprocess.run(
        [str(fresh_env.python), "-I", "-c", PREDICT, str(logged_model.model_dir),
         str(tmp_path / "rows.parquet"), str(tmp_path / "out.parquet")],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    got = pd.read_parquet(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-6)
