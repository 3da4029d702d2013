"""Static checks of Dockerfile.gpu, for what the CPU image built from it cannot show (the CUDA
defaults); test_image.py builds and runs that image."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import tomllib
from dockerfile_parse import DockerfileParser

from tools import image as image_tool

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


def test_base_is_a_cuda_runtime_image_by_default(dockerfile: DockerfileParser) -> None:
    base = arg_default(dockerfile, "BASE_IMAGE")
    assert base.startswith("nvidia/cuda:") and "runtime" in base
    # Every stage starts from the base (the CPU image only changes the argument).
    stages = instructions(dockerfile, "FROM")
    assert stages == ["${BASE_IMAGE} AS system", "system AS requirements", "system"]


def test_installs_the_cuda_build_of_torch_by_default(dockerfile: DockerfileParser) -> None:
    torch_spec = arg_default(dockerfile, "TORCH_SPEC")
    assert torch_spec.startswith("torch==") and "+cpu" not in torch_spec
    assert "/whl/cu" in arg_default(dockerfile, "TORCH_INDEX_URL")
    # The same version as the CPU build the Makefile installs and builds the CPU image with, so
    # both run the same code.
    makefile = (ROOT / "Makefile").read_text()
    assert f"TORCH_CPU ?= {torch_spec}+cpu" in makefile
    assert f"{torch_spec}+cpu" == image_tool.TORCH_CPU
    torch_runs = [r for r in instructions(dockerfile, "RUN") if "${TORCH_SPEC}" in r]
    assert torch_runs == ['pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"']


def test_copies_every_package_and_installs_it(dockerfile: DockerfileParser) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    top_level = {p.split(".")[0] for p in pyproject["tool"]["setuptools"]["packages"]}
    copied = {c.split()[0] for c in instructions(dockerfile, "COPY")}
    assert top_level <= copied
    # The context lets every package in (.dockerignore lists what goes in, not what stays out).
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert {f"!{package}/" for package in top_level} <= set(ignore)
    installs = [r for r in instructions(dockerfile, "RUN") if r.startswith("pip install ")]
    assert installs[-1].startswith("pip install --no-deps --no-build-isolation .")


def test_a_code_change_reinstalls_no_dependency(dockerfile: DockerfileParser) -> None:
    """torch, then the dependencies, then the source: each layer is rebuilt only when what it
    copies changed, so the dependency layers come before the first package is copied."""
    steps = [(i["instruction"], i["value"]) for i in dockerfile.structure]
    first_source = min(
        n for n, (kind, value) in enumerate(steps) if kind == "COPY" and "contract" in value
    )
    torch = next(n for n, (kind, value) in enumerate(steps) if "${TORCH_SPEC}" in value)
    requirements = next(
        n for n, (kind, value) in enumerate(steps) if "--requirement /tmp/requirements" in value
    )
    assert torch < requirements < first_source
    # The dependency list reaches the final stage by content, not the whole pyproject.toml.
    assert ("COPY", "--from=requirements /tmp/requirements.txt /tmp/") in steps


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
    # Set in the first stage, which the final one starts from (the parser's ``envs`` holds only
    # what the last FROM set itself).
    env = dict(pair.split("=", 1) for pair in shlex.split(instructions(dockerfile, "ENV")[0]))
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["XCOM_RETURN_PATH"] == "/airflow/xcom/return.json"
