"""Static checks of Dockerfile.gpu (no Docker engine runs on the development and CI machines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(fileobj=(ROOT / "Dockerfile.gpu").open("rb"))
    return parser


def instructions(dockerfile: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in dockerfile.structure if i["instruction"] == name]


def arg_default(dockerfile: DockerfileParser, name: str) -> str:
    """The default of ``ARG name=default``, also for ARGs before FROM."""
    for value in instructions(dockerfile, "ARG"):
        key, _, default = value.partition("=")
        if key == name:
            return default.strip('"')
    raise KeyError(name)


def test_base_is_a_cuda_runtime_image(dockerfile: DockerfileParser) -> None:
    base = arg_default(dockerfile, "CUDA_BASE")
    assert base.startswith("nvidia/cuda:") and "runtime" in base
    assert instructions(dockerfile, "FROM") == ["${CUDA_BASE}"]


def test_installs_the_cuda_build_of_torch_not_the_cpu_one(dockerfile: DockerfileParser) -> None:
    torch_spec = arg_default(dockerfile, "TORCH_SPEC")
    assert torch_spec.startswith("torch==") and "+cpu" not in torch_spec
    # The same version as the CPU build the Makefile installs, so both run the same code.
    makefile = (ROOT / "Makefile").read_text()
    assert f"TORCH_CPU ?= {torch_spec}+cpu" in makefile
    assert any("${TORCH_SPEC}" in run for run in instructions(dockerfile, "RUN"))


def test_copies_every_package_and_installs_it(dockerfile: DockerfileParser) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    top_level = {p.split(".")[0] for p in pyproject["tool"]["setuptools"]["packages"]}
    copied = {c.split()[0] for c in instructions(dockerfile, "COPY")}
    assert top_level <= copied
    assert any(run.startswith("pip install .") for run in instructions(dockerfile, "RUN"))


def test_runs_as_non_root_numeric_user(dockerfile: DockerfileParser) -> None:
    user = instructions(dockerfile, "USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_exec_form_entrypoint_with_an_init_that_forwards_signals(
    dockerfile: DockerfileParser,
) -> None:
    entrypoint = json.loads(instructions(dockerfile, "ENTRYPOINT")[-1])
    assert entrypoint[0].endswith("tini")
    assert "tini" in " ".join(instructions(dockerfile, "RUN"))
    cmd = json.loads(instructions(dockerfile, "CMD")[-1])
    assert cmd[:2] == ["python", "-m"]


def test_unbuffered_output_and_xcom_path(dockerfile: DockerfileParser) -> None:
    env = dockerfile.envs
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["XCOM_RETURN_PATH"] == "/airflow/xcom/return.json"
