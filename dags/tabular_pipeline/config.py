"""The pipeline's deployment config: one YAML file holds everything about where and how the
steps run (image, namespace, resources, GPUs, secrets, data, timeouts).

The DAG reads ``$TABULAR_TRAINING_CONFIG`` when set, else ``tabular_training.yaml`` beside the
DAG file. A bad file fails the DAG import with a message naming the file and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# libyaml's loader when present: several times faster, and this runs on every DAG parse.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CONFIG_ENV = "TABULAR_TRAINING_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "tabular_training.yaml"
STEPS = ("validate", "preprocess", "train", "evaluate", "deploy")
LAUNCHERS = ("kubernetes", "local")
# Credentials must come from Secrets; a literal value for one of these is refused.
CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)


class ConfigError(ValueError):
    """The config file is missing, unreadable or has a bad value (the message names both)."""


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable filled from a key of a Kubernetes Secret."""

    env: str
    secret: str
    key: str


@dataclass(frozen=True)
class GpuConfig:
    count: int
    models: tuple[str, ...]
    node_label: str
    products: dict[str, tuple[str, ...]]
    resource: str
    taint_key: str
    shm_size: str

    @property
    def product_values(self) -> list[str]:
        """Every ``node_label`` value that counts as one of the wanted models."""
        return [value for model in self.models for value in self.products[model]]


@dataclass(frozen=True)
class DataConfig:
    source: str
    target: str
    root: str
    volume_claim: str | None
    mount_path: str
    aws_conn_id: str
    fs_conn_id: str
    poke_interval_seconds: int
    wait_timeout_seconds: int


@dataclass(frozen=True)
class PipelineConfig:
    path: Path
    launcher: str
    image: str
    image_pull_policy: str
    image_pull_secrets: tuple[str, ...]
    namespace: str
    service_account: str | None
    kubernetes_conn_id: str
    run_as_user: int
    model_name: str
    data: DataConfig
    gpu: GpuConfig
    env: dict[str, str]
    secrets: tuple[SecretEnv, ...]
    resources: dict[str, dict[str, dict[str, str]]]
    execution_timeout_minutes: dict[str, int]
    startup_timeout_seconds: int
    trainer_grace_period_seconds: int
    retries: int
    retry_delay_seconds: int
    max_parallel_trials: int
    labels: dict[str, str] = field(default_factory=dict)


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: Path | None = None) -> PipelineConfig:
    """Read and check the config file (``config_path()`` when ``path`` is None)."""
    path = path or config_path()
    try:
        raw = yaml.load(path.read_text(), Loader=SafeLoader)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the pipeline config ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return _Reader(path, raw).pipeline()


class _Reader:
    """Typed access to the raw mapping; every error names the file and the dotted key."""

    def __init__(self, path: Path, raw: dict[str, Any]) -> None:
        self.path = path
        self.raw = raw

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is ...:
                    raise self.fail(key, "missing")
                return default
            node = node[part]
        if node is None and default is None:
            return None
        if not isinstance(node, kind) or (kind is int and isinstance(node, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"expected {names}, got {node!r}")
        return node

    def integer(self, key: str, default: Any = ..., minimum: int = 0) -> int:
        value = self.get(key, int, default)
        if value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value}")
        return int(value)

    def choice(self, key: str, options: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}; got {value!r}")
        return str(value)

    def strings(self, key: str, default: Any = ...) -> dict[str, str]:
        """A mapping of names to scalar values (numbers become strings, e.g. ``cpu: 2``)."""
        value = self.get(key, dict, default)
        for k, v in value.items():
            if not isinstance(v, str | int | float) or isinstance(v, bool):
                raise self.fail(f"{key}.{k}", f"expected a string or number, got {v!r}")
        return {str(k): str(v) for k, v in value.items()}

    def string_list(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{key}[{i}]", f"expected a string, got {item!r}")
        return tuple(value)

    def pipeline(self) -> PipelineConfig:
        env = self.strings("env", {})
        for name in sorted(set(env) & set(CREDENTIAL_ENV)):
            raise self.fail(f"env.{name}", "credentials come from a Secret: list it under secrets")
        return PipelineConfig(
            path=self.path,
            launcher=self.choice("launcher", LAUNCHERS, "kubernetes"),
            image=self.get("image", str),
            image_pull_policy=self.choice(
                "image_pull_policy", ("IfNotPresent", "Always", "Never"), "IfNotPresent"
            ),
            image_pull_secrets=self.string_list("image_pull_secrets", []),
            namespace=self.get("namespace", str),
            service_account=self.get("service_account", str, None),
            kubernetes_conn_id=self.get("kubernetes_conn_id", str, "kubernetes_default"),
            run_as_user=self.integer("run_as_user", 10001, minimum=1),
            model_name=self.get("model_name", str),
            data=self.data(),
            gpu=self.gpu(),
            env=env,
            secrets=self.secrets(),
            resources=self.resources(),
            execution_timeout_minutes={
                step: self.integer(f"execution_timeout_minutes.{step}", minimum=1) for step in STEPS
            },
            startup_timeout_seconds=self.integer("startup_timeout_seconds", 1800, minimum=1),
            trainer_grace_period_seconds=self.integer("trainer_grace_period_seconds", 300),
            retries=self.integer("retries", 2),
            retry_delay_seconds=self.integer("retry_delay_seconds", 300),
            max_parallel_trials=self.integer("max_parallel_trials", 4, minimum=1),
            labels=self.strings("labels", {}),
        )

    def data(self) -> DataConfig:
        data = self._data()
        if data.volume_claim and not data.root.startswith(data.mount_path.rstrip("/") + "/"):
            raise self.fail(
                "data.root",
                f"must be under data.mount_path {data.mount_path} when data.volume_claim is set",
            )
        return data

    def _data(self) -> DataConfig:
        return DataConfig(
            source=self.get("data.source", str),
            target=self.get("data.target", str),
            root=self.get("data.root", str).rstrip("/"),
            volume_claim=self.get("data.volume_claim", str, None),
            mount_path=self.get("data.mount_path", str, "/data"),
            aws_conn_id=self.get("data.aws_conn_id", str, "aws_default"),
            fs_conn_id=self.get("data.fs_conn_id", str, "fs_default"),
            poke_interval_seconds=self.integer("data.poke_interval_seconds", 300),
            wait_timeout_seconds=self.integer("data.wait_timeout_seconds", 6 * 3600),
        )

    def gpu(self) -> GpuConfig:
        products = {
            str(model): self.string_list(f"gpu.products.{model}")
            for model in self.get("gpu.products", dict)
        }
        models = self.string_list("gpu.models")
        for model in models:
            if model not in products:
                raise self.fail("gpu.models", f"{model!r} is not a key of gpu.products")
        if not models:
            raise self.fail("gpu.models", "name at least one GPU model")
        return GpuConfig(
            count=self.integer("gpu.count", 1, minimum=1),
            models=models,
            node_label=self.get("gpu.node_label", str, "nvidia.com/gpu.product"),
            products=products,
            resource=self.get("gpu.resource", str, "nvidia.com/gpu"),
            taint_key=self.get("gpu.taint_key", str, "nvidia.com/gpu"),
            shm_size=self.get("gpu.shm_size", str, "16Gi"),
        )

    def secrets(self) -> tuple[SecretEnv, ...]:
        items = self.get("secrets", list, [])
        out = []
        for i, item in enumerate(items):
            if (
                not isinstance(item, dict)
                or set(item) != {"env", "secret", "key"}
                or not all(isinstance(v, str) and v for v in item.values())
            ):
                problem = "expected a mapping with env, secret and key names"
                raise self.fail(f"secrets[{i}]", problem)
            out.append(SecretEnv(str(item["env"]), str(item["secret"]), str(item["key"])))
        return tuple(out)

    def resources(self) -> dict[str, dict[str, dict[str, str]]]:
        out = {}
        for step in STEPS:
            spec = self.get(f"resources.{step}", dict)
            unknown = set(spec) - {"requests", "limits"}
            if unknown:
                raise self.fail(f"resources.{step}", f"unknown keys {sorted(unknown)}")
            out[step] = {
                kind: self.strings(f"resources.{step}.{kind}") for kind in ("requests", "limits")
            }
        return out
