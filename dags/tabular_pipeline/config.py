"""The pipeline's deployment config: one YAML file holds everything about where and how the
steps run (image, namespace, resources, GPUs, secrets, data, timeouts).

The DAG reads ``$TABULAR_TRAINING_CONFIG`` when set, else ``tabular_training.yaml`` beside the
DAG file. The file is a declared model: an unknown key (a typo such as ``retires``) or a bad
value fails the DAG import with a message naming the file, the dotted key and the problem (for
an unknown key, the nearest known one).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict

# libyaml's loader when present: several times faster, and this runs on every DAG parse.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CONFIG_ENV = "TABULAR_TRAINING_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "tabular_training.yaml"
STEPS = ("validate", "preprocess", "train", "evaluate", "deploy")
LAUNCHERS = ("kubernetes", "local")
PULL_POLICIES = ("IfNotPresent", "Always", "Never")
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


def _as_quantity(value: Any) -> Any:
    """A number where Kubernetes takes a string (``cpu: 2``, an env value ``3``) becomes one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Quantity = Annotated[StrictStr, BeforeValidator(_as_quantity)]
Name = Annotated[StrictStr, Field(min_length=1)]


class Section(BaseModel):
    """A part of the config: unknown keys are refused, values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def one_of(value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"must be one of {', '.join(options)}; got {value!r}")
    return value


class SecretEnv(Section):
    """An environment variable filled from a key of a Kubernetes Secret."""

    env: Name
    secret: Name
    key: Name


class GpuConfig(Section):
    """Where trainer pods go: GPUs per pod and the accepted GPU models (keys of ``products``,
    each a list of ``node_label`` values)."""

    count: StrictInt = Field(1, ge=1)
    products: dict[StrictStr, tuple[StrictStr, ...]]
    models: tuple[StrictStr, ...] = ("A100", "H100")
    node_label: StrictStr = "nvidia.com/gpu.product"
    resource: StrictStr = "nvidia.com/gpu"
    taint_key: StrictStr = "nvidia.com/gpu"
    shm_size: Quantity = "16Gi"

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not models:
            raise ValueError("name at least one GPU model")
        products = info.data.get("products", {})
        for model in models:
            if model not in products:
                raise ValueError(f"{model!r} is not a key of gpu.products")
        return models

    @property
    def product_values(self) -> list[str]:
        """Every ``node_label`` value that counts as one of the wanted models."""
        return [value for model in self.models for value in self.products[model]]


class DataConfig(Section):
    """The raw data of a run and the root of every step's output."""

    source: StrictStr
    target: StrictStr
    # validate and preprocess decide the same way (auto: common/task.py's rule)
    task: Literal["auto", "classification", "regression"] = "auto"
    volume_claim: StrictStr | None = None  # a PVC name when root is a path under mount_path
    mount_path: StrictStr = "/data"
    root: StrictStr
    aws_conn_id: StrictStr = "aws_default"
    fs_conn_id: StrictStr = "fs_default"
    poke_interval_seconds: StrictInt = Field(300, ge=0)
    wait_timeout_seconds: StrictInt = Field(6 * 3600, ge=0)

    @field_validator("root")
    @classmethod
    def _root_on_the_volume(cls, root: str, info: ValidationInfo) -> str:
        root = root.rstrip("/")
        mount = str(info.data.get("mount_path", "/data"))
        if info.data.get("volume_claim") and not root.startswith(mount.rstrip("/") + "/"):
            raise ValueError(f"must be under data.mount_path {mount} when data.volume_claim is set")
        return root


class PodExecution(Section):
    """How the operator waits for a pod on the cluster (``launcher: kubernetes``; the local
    launcher always runs the pod in-process). ``deferrable`` hands the wait to the triggerer, so
    a worker slot is not held for hours of training; ``logging_interval_seconds`` is how often a
    deferred task resumes to fetch the pod's logs (None: only at the end); ``durable`` makes a
    retry after a lost worker reattach to the running pod instead of starting a second one."""

    deferrable: StrictBool = False
    logging_interval_seconds: StrictInt | None = Field(60, ge=1)
    durable: StrictBool = True


@with_config(ConfigDict(extra="forbid"))
class StepResources(TypedDict):
    """Kubernetes requests and limits of one step's container (quantities as strings)."""

    requests: dict[StrictStr, Quantity]
    limits: dict[StrictStr, Quantity]


Minutes = Annotated[StrictInt, Field(ge=1)]
# Sub-keys that a field's own check names: a ValueError "<sub-key>: <problem>" raised for one of
# these fields is reported at "<field>.<sub-key>".
KEYED_FIELDS = ("env", "resources", "execution_timeout_minutes")


def every_step(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` when it has exactly one entry per step."""
    for key in values:
        if key not in STEPS:
            raise ValueError(f"{key}: {unknown_key([key], list(STEPS))}")
    for step in STEPS:
        if step not in values:
            raise ValueError(f"{step}: missing")
    return values


class ScoringConfig(Section):
    """The ``tabular_scoring`` DAG: the file it scores with the champion, where the predictions
    go (both may hold ``{{ ds }}``, the run's date), and its CPU pod's resources."""

    input: StrictStr
    output: StrictStr
    keep_columns: tuple[StrictStr, ...] = ()
    batch_rows: StrictInt = Field(65_536, ge=1)
    # A cron expression: also score on this schedule, not only when a new champion is deployed.
    schedule: StrictStr | None = None
    resources: StepResources
    execution_timeout_minutes: Minutes = 60


class PipelineConfig(Section):
    """The whole file; ``path`` is where it was read from."""

    path: Path = DEFAULT_CONFIG
    launcher: StrictStr = "kubernetes"
    image: StrictStr
    image_pull_policy: StrictStr = "IfNotPresent"
    image_pull_secrets: tuple[StrictStr, ...] = ()
    namespace: StrictStr
    service_account: StrictStr | None = None
    kubernetes_conn_id: StrictStr = "kubernetes_default"
    run_as_user: StrictInt = Field(10001, ge=1)
    model_name: StrictStr
    data: DataConfig
    gpu: GpuConfig
    env: dict[StrictStr, Quantity] = Field(default_factory=dict)
    secrets: tuple[SecretEnv, ...] = ()
    resources: dict[StrictStr, StepResources]
    execution_timeout_minutes: dict[StrictStr, Minutes]
    startup_timeout_seconds: StrictInt = Field(1800, ge=1)
    trainer_grace_period_seconds: StrictInt = Field(300, ge=0)
    retries: StrictInt = Field(2, ge=0)
    retry_delay_seconds: StrictInt = Field(300, ge=0)
    max_parallel_trials: StrictInt = Field(4, ge=1)
    labels: dict[StrictStr, Quantity] = Field(default_factory=dict)
    pod_execution: PodExecution = PodExecution.model_validate({})  # frozen: one default is safe
    scoring: ScoringConfig

    @field_validator("launcher")
    @classmethod
    def _launcher(cls, value: str) -> str:
        return one_of(value, LAUNCHERS)

    @field_validator("image_pull_policy")
    @classmethod
    def _pull_policy(cls, value: str) -> str:
        return one_of(value, PULL_POLICIES)

    @field_validator("resources", "execution_timeout_minutes")
    @classmethod
    def _every_step(cls, values: dict[str, Any]) -> dict[str, Any]:
        return every_step(values)

    @field_validator("env")
    @classmethod
    def _no_credentials(cls, env: dict[str, str]) -> dict[str, str]:
        for name in sorted(set(env) & set(CREDENTIAL_ENV)):
            raise ValueError(f"{name}: credentials come from a Secret: list it under secrets")
        return env


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
    if "path" in raw:
        raise ConfigError(f"{path}: path: unknown key (set by the loader)")
    try:
        return PipelineConfig.model_validate({**raw, "path": path})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc.errors()[0])}") from None


def describe(error: Any) -> str:
    """``<dotted key>: <problem>`` for one pydantic error, in the config's own words."""
    location = list(error["loc"])
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"{dotted(location)}: {unknown_key(location)}"
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        if location and location[-1] in KEYED_FIELDS:
            name, _, message = message.partition(": ")
            location.append(name)
        return f"{dotted(location)}: {message}"
    problems = {
        "missing": "missing",
        "string_type": f"expected str, got {value!r}",
        "int_type": f"expected int, got {value!r}",
        "bool_type": f"expected true or false, got {value!r}",
        "dict_type": f"expected a mapping, got {value!r}",
        "model_type": f"expected a mapping, got {value!r}",
        "list_type": f"expected a list, got {value!r}",
        "tuple_type": f"expected a list, got {value!r}",
        "greater_than_equal": f"must be >= {error.get('ctx', {}).get('ge')}, got {value!r}",
        "string_too_short": "must not be empty",
    }
    return f"{dotted(location)}: {problems.get(kind, error['msg'])}"


def dotted(location: list[Any]) -> str:
    """``["secrets", 1, "env"]`` → ``secrets[1].env``."""
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def unknown_key(location: list[Any], known: list[str] | None = None) -> str:
    """The problem of an unknown key: which keys exist there, and the nearest one."""
    known = known if known is not None else known_keys(location[:-1])
    nearest = difflib.get_close_matches(str(location[-1]), known, n=1)
    hint = f"did you mean {nearest[0]!r}? " if nearest else ""
    return f"unknown key; {hint}known: {', '.join(known)}"


def known_keys(parent: list[Any]) -> list[str]:
    """The keys the config accepts under ``parent``, a location of nested sections."""
    node: Any = PipelineConfig
    for part in parent:
        if node is PipelineConfig and part == "resources":
            return list(STEPS) if len(parent) == 1 else list(StepResources.__annotations__)
        node = SecretEnv if isinstance(part, int) else node.model_fields[part].annotation
    return [name for name in node.model_fields if name != "path"]
