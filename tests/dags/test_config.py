"""The deployment config: the cluster file loads into a frozen PipelineConfig, optional keys get
their defaults, and every bad value fails with a ConfigError naming the file and the dotted key."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from tabular_pipeline.config import (
    CONFIG_ENV,
    CREDENTIAL_ENV,
    DEFAULT_CONFIG,
    STEPS,
    ConfigError,
    PipelineConfig,
    SecretEnv,
    config_path,
    load_config,
)

Mutation = Callable[[dict[str, Any]], None]

H100_PRODUCTS = ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"]
A100_PRODUCTS = [
    "NVIDIA-A100-SXM4-40GB",
    "NVIDIA-A100-SXM4-80GB",
    "NVIDIA-A100-PCIE-40GB",
    "NVIDIA-A100-80GB-PCIe",
]


@pytest.fixture
def cluster_raw() -> dict[str, Any]:
    """The cluster config as a plain mapping, to modify and write back."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert isinstance(raw, dict)
    return raw


@pytest.fixture
def write_raw(tmp_path: Path) -> Callable[[Any], Path]:
    """Writes any YAML-able value as a config file in tmp_path and returns its path."""

    def write(raw: Any) -> Path:
        path = tmp_path / "pipeline.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return write


def mutated(raw: dict[str, Any], mutation: Mutation) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    mutation(out)
    return out


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# --- the cluster config -------------------------------------------------------------------------


def test_cluster_config_loads() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert isinstance(config, PipelineConfig)
    assert config.path == DEFAULT_CONFIG
    assert config.launcher == "kubernetes"
    assert config.image == "registry.example.com/ml/tabular-gpu-pipeline:0.1.0"
    assert config.image_pull_policy == "IfNotPresent"
    assert config.image_pull_secrets == ()
    assert config.namespace == "ml-training"
    assert config.service_account == "tabular-pipeline"
    assert config.run_as_user == 10001
    assert config.model_name == "tabular-classifier"


def test_cluster_config_gpu() -> None:
    gpu = load_config(DEFAULT_CONFIG).gpu
    assert gpu.models == ("A100", "H100")  # trainer pods go to A100 or H100 nodes
    assert gpu.product_values == A100_PRODUCTS + H100_PRODUCTS
    assert gpu.products["A100"] == tuple(A100_PRODUCTS)
    assert gpu.count == 1
    assert gpu.resource == "nvidia.com/gpu"
    assert gpu.node_label == "nvidia.com/gpu.product"
    assert gpu.taint_key == "nvidia.com/gpu"
    assert gpu.shm_size == "16Gi"


def test_cluster_config_resources_are_strings_per_step() -> None:
    resources = load_config(DEFAULT_CONFIG).resources
    assert set(resources) == set(STEPS)
    assert resources["train"] == {
        "requests": {"cpu": "8", "memory": "32Gi"},
        "limits": {"cpu": "16", "memory": "64Gi"},
    }
    assert resources["deploy"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    for spec in resources.values():
        for quantities in spec.values():
            assert all(isinstance(v, str) for v in quantities.values())


def test_cluster_config_secrets_env_and_data() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.secrets == (
        SecretEnv(env="MLFLOW_TRACKING_URI", secret="mlflow", key="tracking-uri"),
        SecretEnv(env="MLFLOW_TRACKING_USERNAME", secret="mlflow", key="username"),
        SecretEnv(env="MLFLOW_TRACKING_PASSWORD", secret="mlflow", key="password"),
        SecretEnv(env="AWS_ACCESS_KEY_ID", secret="aws-credentials", key="access-key-id"),
        SecretEnv(env="AWS_SECRET_ACCESS_KEY", secret="aws-credentials", key="secret-access-key"),
    )
    assert config.env == {"AWS_DEFAULT_REGION": "us-east-1"}
    assert config.labels == {"team": "ml-platform"}
    assert config.data.source == "s3://ml-datasets/daily/{{ ds }}/features.parquet"
    assert config.data.target == "label"
    assert config.data.task == "auto"
    assert config.data.root == "s3://ml-pipeline/runs"
    assert config.data.volume_claim is None
    assert config.data.wait_timeout_seconds == 21600
    assert config.execution_timeout_minutes == {
        "validate": 60,
        "preprocess": 120,
        "train": 360,
        "evaluate": 60,
        "deploy": 30,
    }
    assert (config.retries, config.retry_delay_seconds, config.max_parallel_trials) == (2, 300, 4)
    assert (config.startup_timeout_seconds, config.trainer_grace_period_seconds) == (1800, 300)


def test_config_is_frozen() -> None:
    config = load_config(DEFAULT_CONFIG)
    with pytest.raises(ValidationError, match="frozen"):
        config.image = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        config.gpu.count = 2  # type: ignore[misc]


# --- where the config comes from ----------------------------------------------------------------


def test_config_path_defaults_to_the_cluster_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert config_path() == DEFAULT_CONFIG
    assert load_config().path == DEFAULT_CONFIG
    monkeypatch.setenv(CONFIG_ENV, "")
    assert config_path() == DEFAULT_CONFIG


def test_load_config_reads_the_env_variable(
    monkeypatch: pytest.MonkeyPatch,
    cluster_raw: dict[str, Any],
    write_raw: Callable[[Any], Path],
) -> None:
    path = write_raw({**cluster_raw, "namespace": "elsewhere"})
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert config_path() == path
    config = load_config()
    assert config.path == path
    assert config.namespace == "elsewhere"


# --- defaults and derived values ----------------------------------------------------------------


def test_optional_keys_get_their_defaults(
    cluster_raw: dict[str, Any], write_raw: Callable[[Any], Path]
) -> None:
    raw = copy.deepcopy(cluster_raw)
    for key in (
        "launcher",
        "image_pull_policy",
        "image_pull_secrets",
        "service_account",
        "kubernetes_conn_id",
        "run_as_user",
        "env",
        "secrets",
        "startup_timeout_seconds",
        "trainer_grace_period_seconds",
        "retries",
        "retry_delay_seconds",
        "max_parallel_trials",
        "labels",
    ):
        del raw[key]
    for key in ("volume_claim", "mount_path", "aws_conn_id", "fs_conn_id"):
        del raw["data"][key]
    for key in ("poke_interval_seconds", "wait_timeout_seconds"):
        del raw["data"][key]
    for key in ("count", "node_label", "resource", "taint_key", "shm_size"):
        del raw["gpu"][key]

    config = load_config(write_raw(raw))
    assert config.launcher == "kubernetes"
    assert config.image_pull_policy == "IfNotPresent"
    assert config.image_pull_secrets == ()
    assert config.service_account is None
    assert config.kubernetes_conn_id == "kubernetes_default"
    assert config.run_as_user == 10001
    assert config.env == {}
    assert config.secrets == ()
    assert config.labels == {}
    assert (config.startup_timeout_seconds, config.trainer_grace_period_seconds) == (1800, 300)
    assert (config.retries, config.retry_delay_seconds, config.max_parallel_trials) == (2, 300, 4)
    assert config.data.volume_claim is None
    assert config.data.mount_path == "/data"
    assert (config.data.aws_conn_id, config.data.fs_conn_id) == ("aws_default", "fs_default")
    assert (config.data.poke_interval_seconds, config.data.wait_timeout_seconds) == (300, 21600)
    assert config.gpu.count == 1
    assert config.gpu.node_label == "nvidia.com/gpu.product"
    assert config.gpu.resource == "nvidia.com/gpu"
    assert config.gpu.taint_key == "nvidia.com/gpu"
    assert config.gpu.shm_size == "16Gi"


def test_several_gpu_models_list_their_products_in_order(
    cluster_raw: dict[str, Any], write_raw: Callable[[Any], Path]
) -> None:
    raw = mutated(cluster_raw, lambda r: r["gpu"].update(models=["A100", "H100"]))
    gpu = load_config(write_raw(raw)).gpu
    assert gpu.models == ("A100", "H100")
    assert gpu.product_values == A100_PRODUCTS + H100_PRODUCTS


def test_local_launcher_with_a_volume_claim(
    cluster_raw: dict[str, Any], write_raw: Callable[[Any], Path]
) -> None:
    def change(raw: dict[str, Any]) -> None:
        raw["launcher"] = "local"
        raw["data"].update(root="/data/runs///", volume_claim="pipeline-data")
        raw["image_pull_secrets"] = ["regcred"]
        raw["resources"]["train"]["requests"]["cpu"] = 8  # a number is kept as a quantity string

    config = load_config(write_raw(mutated(cluster_raw, change)))
    assert config.launcher == "local"
    assert config.data.root == "/data/runs"
    assert config.data.volume_claim == "pipeline-data"
    assert config.image_pull_secrets == ("regcred",)
    assert config.resources["train"]["requests"]["cpu"] == "8"


def test_non_credential_env_is_allowed(
    cluster_raw: dict[str, Any], write_raw: Callable[[Any], Path]
) -> None:
    raw = mutated(cluster_raw, lambda r: r["env"].update(MLFLOW_EXPERIMENT_NAME="x", RETRIES=3))
    assert load_config(write_raw(raw)).env == {
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_EXPERIMENT_NAME": "x",
        "RETRIES": "3",
    }


# --- unusable files -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert error_of(path) == f"{path}: cannot read the pipeline config (No such file or directory)"


def test_a_folder_is_not_a_config(tmp_path: Path) -> None:
    assert error_of(tmp_path).startswith(f"{tmp_path}: cannot read the pipeline config (")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("image: [unclosed\nnamespace: x\n")
    assert error_of(path).startswith(f"{path}: not valid YAML: ")


@pytest.mark.parametrize("text", ["- image\n- namespace\n", "just a string\n", "", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert error_of(path) == f"{path}: expected a mapping at the top level"


# --- bad values: each names the file and the dotted key -----------------------------------------


def _parts(key: str) -> list[str | int]:
    """``secrets.1.env`` -> ``["secrets", 1, "env"]`` (digits index lists)."""
    return [int(part) if part.isdigit() else part for part in key.split(".")]


def _set(key: str, value: Any) -> Mutation:
    """Sets a dotted key (``gpu.count``, ``secrets.0``) of the raw mapping."""

    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = _parts(key)
        node: Any = raw
        for part in parents:
            node = node[part]
        node[last] = value

    return mutate


def _delete(key: str) -> Mutation:
    """Removes a dotted key of the raw mapping."""

    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = _parts(key)
        node: Any = raw
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


BAD_VALUES: list[tuple[str, Mutation, str, str]] = [
    # (id, mutation, dotted key in the message, rest of the message)
    ("missing-image", _delete("image"), "image", "missing"),
    ("missing-namespace", _delete("namespace"), "namespace", "missing"),
    ("missing-model-name", _delete("model_name"), "model_name", "missing"),
    ("missing-data-source", _delete("data.source"), "data.source", "missing"),
    ("data-not-a-mapping", _set("data", "s3://bucket"), "data", "expected a mapping, got"),
    ("unknown-task", _set("data.task", "ranking"), "data.task", "Input should be 'auto'"),
    ("missing-gpu-products", _delete("gpu.products"), "gpu.products", "missing"),
    ("image-wrong-type", _set("image", 42), "image", "expected str, got 42"),
    ("retries-string", _set("retries", "two"), "retries", "expected int, got 'two'"),
    ("retries-bool", _set("retries", True), "retries", "expected int, got True"),
    ("retries-float", _set("retries", 1.5), "retries", "expected int, got 1.5"),
    ("retries-negative", _set("retries", -1), "retries", "must be >= 0, got -1"),
    ("run-as-root", _set("run_as_user", 0), "run_as_user", "must be >= 1, got 0"),
    (
        "poke-interval-negative",
        _set("data.poke_interval_seconds", -300),
        "data.poke_interval_seconds",
        "must be >= 0, got -300",
    ),
    ("gpu-count-zero", _set("gpu.count", 0), "gpu.count", "must be >= 1, got 0"),
    ("no-parallel-trials", _set("max_parallel_trials", 0), "max_parallel_trials", "must be >= 1"),
    ("no-startup-time", _set("startup_timeout_seconds", 0), "startup_timeout_seconds", ">= 1"),
    (
        "volume-claim-with-s3-root",
        _set("data.volume_claim", "pipeline-data"),
        "data.root",
        "must be under data.mount_path /data when data.volume_claim is set",
    ),
    (
        "timeout-negative",
        _set("execution_timeout_minutes.train", 0),
        "execution_timeout_minutes.train",
        "must be >= 1, got 0",
    ),
    (
        "timeout-missing-step",
        _delete("execution_timeout_minutes.deploy"),
        "execution_timeout_minutes.deploy",
        "missing",
    ),
    (
        "unknown-launcher",
        _set("launcher", "docker"),
        "launcher",
        "must be one of kubernetes, local; got 'docker'",
    ),
    (
        "unknown-pull-policy",
        _set("image_pull_policy", "Sometimes"),
        "image_pull_policy",
        "must be one of IfNotPresent, Always, Never; got 'Sometimes'",
    ),
    (
        "unknown-gpu-model",
        _set("gpu.models", ["H100", "B200"]),
        "gpu.models",
        "'B200' is not a key of gpu.products",
    ),
    ("no-gpu-model", _set("gpu.models", []), "gpu.models", "name at least one GPU model"),
    ("gpu-models-not-a-list", _set("gpu.models", "H100"), "gpu.models", "expected a list"),
    ("gpu-products-not-a-mapping", _set("gpu.products", ["H100"]), "gpu.products", "a mapping"),
    (
        "credential-in-env",
        _set("env.AWS_SECRET_ACCESS_KEY", "hunter2"),
        "env.AWS_SECRET_ACCESS_KEY",
        "credentials come from a Secret: list it under secrets",
    ),
    ("env-not-a-mapping", _set("env", ["A=1"]), "env", "expected a mapping"),
    ("labels-not-a-mapping", _set("labels", "team"), "labels", "expected a mapping"),
    ("secrets-not-a-list", _set("secrets", {"env": "A"}), "secrets", "expected a list"),
    (
        "secret-missing-key",
        _set("secrets.1", {"env": "MLFLOW_TRACKING_USERNAME", "secret": "mlflow"}),
        "secrets[1].key",
        "missing",
    ),
    (
        "secret-extra-key",
        _set("secrets.0", {"env": "A", "secret": "s", "key": "k", "optional": True}),
        "secrets[0].optional",
        "unknown key; known: env, secret, key",
    ),
    (
        "secret-not-a-mapping",
        _set("secrets.4", "aws-credentials/secret-access-key"),
        "secrets[4]",
        "expected a mapping, got 'aws-credentials/secret-access-key'",
    ),
    (
        "unknown-resources-key",
        _set("resources.train.limit", {"cpu": "16"}),
        "resources.train.limit",
        "unknown key; did you mean 'limits'? known: requests, limits",
    ),
    ("missing-step-resources", _delete("resources.deploy"), "resources.deploy", "missing"),
    (
        "missing-requests",
        _delete("resources.evaluate.requests"),
        "resources.evaluate.requests",
        "missing",
    ),
    ("resources-not-a-mapping", _set("resources.train", "big"), "resources.train", "a mapping"),
    (
        "typo-at-the-top",
        _set("retires", 3),
        "retires",
        "unknown key; did you mean 'retries'? known: launcher, image,",
    ),
    (
        "typo-in-a-section",
        _set("max_paralel_trials", 1),
        "max_paralel_trials",
        "did you mean 'max_parallel_trials'?",
    ),
    ("typo-in-gpu", _set("gpu.modles", ["A100"]), "gpu.modles", "did you mean 'models'?"),
    (
        "unknown-step",
        _set("resources.trian", {"requests": {}, "limits": {}}),
        "resources.trian",
        "did you mean 'train'?",
    ),
    (
        "unknown-step-timeout",
        _set("execution_timeout_minutes.evaluation", 5),
        "execution_timeout_minutes.evaluation",
        "did you mean 'evaluate'?",
    ),
    ("empty-secret-name", _set("secrets.0.secret", ""), "secrets[0].secret", "must not be empty"),
    (
        "volume-claim-wrong-type",
        _set("data.volume_claim", ["pvc"]),
        "data.volume_claim",
        "expected str",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "key", "problem"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_VALUES],
)
def test_bad_value_names_file_and_key(
    cluster_raw: dict[str, Any],
    write_raw: Callable[[Any], Path],
    mutation: Mutation,
    key: str,
    problem: str,
) -> None:
    path = write_raw(mutated(cluster_raw, mutation))
    message = error_of(path)
    assert message.startswith(f"{path}: {key}: "), message
    assert problem in message


@pytest.mark.parametrize("name", CREDENTIAL_ENV)
def test_every_credential_name_is_refused_under_env(
    cluster_raw: dict[str, Any], write_raw: Callable[[Any], Path], name: str
) -> None:
    path = write_raw(mutated(cluster_raw, _set(f"env.{name}", "literal")))
    assert error_of(path) == (
        f"{path}: env.{name}: credentials come from a Secret: list it under secrets"
    )


def test_the_first_refused_credential_is_reported_alphabetically(
    cluster_raw: dict[str, Any], write_raw: Callable[[Any], Path]
) -> None:
    def change(raw: dict[str, Any]) -> None:
        raw["env"].update(MLFLOW_TRACKING_PASSWORD="p", AWS_SESSION_TOKEN="t")

    message = error_of(write_raw(mutated(cluster_raw, change)))
    assert re.search(r": env\.AWS_SESSION_TOKEN: ", message), message
    assert "MLFLOW_TRACKING_PASSWORD" not in message


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_a_binary_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00image: x\n")
    assert error_of(path).startswith(f"{path}: ")


@pytest.mark.parametrize("products", ["NVIDIA-H100-PCIe", None], ids=["str", "null"])
def test_gpu_products_must_be_lists(
    cluster_raw: dict[str, Any], write_raw: Callable[[Any], Path], products: Any
) -> None:
    path = write_raw(mutated(cluster_raw, _set("gpu.products.H100", products)))
    assert error_of(path).startswith(f"{path}: gpu.products.H100: ")


def test_null_resource_quantity_is_refused(
    cluster_raw: dict[str, Any], write_raw: Callable[[Any], Path]
) -> None:
    path = write_raw(mutated(cluster_raw, _set("resources.train.requests.cpu", None)))
    assert error_of(path).startswith(f"{path}: resources.train.requests")
