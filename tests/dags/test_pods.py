"""The pods of the ``tabular_training`` DAG as the real cncf-kubernetes provider renders them.

Each step's task is taken from the DAG parsed by the real ``BundleDagBag`` with a given config,
its template fields are rendered with a template context like the one the task runner builds,
and ``KubernetesPodOperator.build_pod_request_obj`` builds the pod that would be sent to the
API server. The tests check what the cluster needs (GPU requests and placement, Pod Security
"restricted", secrets by reference, volumes, commands, run-scoped paths, timeouts and retries)
and that every rendered pod validates strictly against the Kubernetes API schema.

The mapped trainer is rendered the way the task runner does it at run time: its expand input
is resolved from the upstream XCom for one map index, the operator is unmapped, and the
unmapped ``StepPodOperator`` is rendered and builds the pod. ``XComArg`` values inside
``arguments`` (``select_best``'s ``run_id`` in evaluate and deploy) are resolved by
``render_template_fields`` itself, through the task instance's ``xcom_pull``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import kubernetes_validate
import pytest
from airflow.providers.cncf.kubernetes.utils.pod_manager import OnFinishAction
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Context
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.sdk.definitions.param import process_params
from kubernetes.client import ApiClient
from tabular_pipeline.config import CREDENTIAL_ENV, PipelineConfig, load_config
from tabular_pipeline.pods import StepPodOperator
from tabular_pipeline.sweep import run_names

from .conftest import DAG_ID

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.33"
RUN_ID = "scheduled__2026-03-01T00:00:00+00:00"
DS = "2026-03-01"
# The MLflow run id that select_best pushes under its "run_id" key.
COMPARED_CHAMPION = 3  # the champion version the evaluation compared with
SELECTED_RUN_ID = "5f0c6a1e9d2b4c7a8e3f1b0d2c4a6e8f"

BASE = "base"
XCOM_SIDECAR = "airflow-xcom-sidecar"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = "nvidia.com/gpu"
GPU_NODE_LABEL = "nvidia.com/gpu.product"

STEP_TASKS = {
    "validate": "data_preparation.validate",
    "preprocess": "data_preparation.preprocess",
    "train": "hyperparameter_tuning.train",
    "evaluate": "evaluate",
    "deploy": "deploy",
}
STEPS = tuple(STEP_TASKS)
CPU_STEPS = tuple(step for step in STEPS if step != "train")
DATA_STEPS = ("validate", "preprocess")
MODEL_STEPS = ("evaluate", "deploy")  # after the sweep: they read the data results
DATA_READY = "data_preparation.data_ready"


def data_results(preprocess_output: str) -> dict[str, Any]:
    """What data_ready pushes, as far as the later steps read it."""
    return {"validate": {}, "preprocess": {"output_uri": preprocess_output}}


STEP_MODULES = {
    "validate": "validator",
    "preprocess": "preprocess",
    "train": "trainer",
    "evaluate": "evaluator",
    "deploy": "deployer",
}
# Values NVIDIA GPU feature discovery sets on nvidia.com/gpu.product, per model and form factor.
GPU_PRODUCTS = {
    "A100": {
        "SXM": {"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-SXM4-80GB"},
        "PCIe": {"NVIDIA-A100-PCIE-40GB", "NVIDIA-A100-80GB-PCIe"},
    },
    "H100": {
        "SXM": {"NVIDIA-H100-80GB-HBM3"},
        "PCIe": {"NVIDIA-H100-PCIe"},
    },
}
CREDENTIAL_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|MLFLOW_TRACKING_URI")

GPU_MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "cluster": {},
    "a100": {"gpu": {"models": ["A100"]}},
    "h100": {"gpu": {"models": ["H100"]}},
    "a100-h100": {"gpu": {"models": ["A100", "H100"]}},
}
CUSTOM_LABEL_CONFIG: dict[str, Any] = {
    "gpu": {
        "models": ["A100"],
        "node_label": "cloud.google.com/gke-accelerator",
        "taint_key": "example.com/gpu-node",
        "products": {"A100": ["nvidia-tesla-a100", "nvidia-a100-80gb"]},
    }
}
PVC_CONFIG: dict[str, Any] = {
    "data": {
        "volume_claim": "tabular-pipeline-data",
        "mount_path": "/mnt/pipeline",
        "root": "/mnt/pipeline/runs",
    },
}
CUSTOM_CONFIG: dict[str, Any] = {
    "image": "registry.internal/ml/tabular-gpu-pipeline@sha256:" + "ab" * 32,
    "image_pull_policy": "Always",
    "image_pull_secrets": ["registry-credentials"],
    "namespace": "gpu-batch",
    "service_account": "tabular-runner",
    "gpu": {"count": 2, "shm_size": "32Gi"},
    "trainer_grace_period_seconds": 900,
    "startup_timeout_seconds": 3600,
    "retries": 4,
    "retry_delay_seconds": 60,
    "execution_timeout_minutes": {"train": 720, "deploy": 15},
}
ALL_CONFIGS: dict[str, dict[str, Any]] = {
    **GPU_MODEL_CONFIGS,
    "custom-label": CUSTOM_LABEL_CONFIG,
    "pvc": PVC_CONFIG,
    "custom": CUSTOM_CONFIG,
}


@dataclass
class FakeTaskInstance:
    """What rendering and ``build_pod_request_obj`` read from the running task instance, with
    XComs served from ``xcoms`` (``(task_ids, key) -> value``) and every pull recorded."""

    dag_id: str
    task_id: str
    map_index: int
    xcoms: dict[tuple[str, str], Any]
    run_id: str = RUN_ID
    try_number: int = 1
    task: Any = None
    pulls: list[dict[str, Any]] = field(default_factory=list)

    def xcom_pull(self, **kwargs: Any) -> Any:
        self.pulls.append(kwargs)
        key = (kwargs["task_ids"], kwargs.get("key", "return_value"))
        if key not in self.xcoms:
            raise AssertionError(f"unexpected XCom pull {kwargs}")
        return copy.deepcopy(self.xcoms[key])


@dataclass(frozen=True)
class RenderedStep:
    """One step's concrete operator (unmapped for the trainer) and its pod as sent to the API."""

    operator: StepPodOperator
    pod: dict[str, Any]
    ti: FakeTaskInstance

    def container(self, name: str) -> dict[str, Any]:
        matches = [c for c in self.pod["spec"]["containers"] if c["name"] == name]
        assert len(matches) == 1, [c["name"] for c in self.pod["spec"]["containers"]]
        return matches[0]

    @property
    def base(self) -> dict[str, Any]:
        return self.container(BASE)

    @property
    def args(self) -> list[str]:
        return list(self.base.get("args", []))

    def volume(self, name: str) -> dict[str, Any]:
        matches = [v for v in self.pod["spec"].get("volumes", []) if v["name"] == name]
        assert len(matches) == 1, self.pod["spec"].get("volumes")
        return matches[0]

    def mounts(self, container: str = BASE) -> dict[str, str]:
        """mount path → volume name of a container."""
        return {
            m["mountPath"]: m["name"] for m in self.container(container).get("volumeMounts", [])
        }


@dataclass(frozen=True)
class Rendered:
    """A config, the DAG parsed with it, the sweep pushed for the trainer and every step's pod."""

    config: PipelineConfig
    dag: DAG
    sweep: list[dict[str, Any]]
    steps: dict[str, RenderedStep]

    def run_path(self, step: str) -> str:
        """What ``<root>/<dag_id>/<run_id>/<step>`` must render to for this run."""
        return f"{self.config.data.root}/{DAG_ID}/{RUN_ID}/{step}"

    def __iter__(self) -> Iterator[tuple[str, RenderedStep]]:
        return iter(self.steps.items())


def template_context(dag: DAG, task: Any, ti: FakeTaskInstance) -> Context:
    """The part of the task runner's template context the operators use, params resolved the
    way the runner resolves them (``process_params``: DAG params, task params, run conf)."""
    dag_run = SimpleNamespace(dag_id=dag.dag_id, run_id=RUN_ID, conf={})
    context = {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "dag_run": dag_run,
        "run_id": RUN_ID,
        "ds": DS,
        "ds_nodash": DS.replace("-", ""),
        "logical_date": dt.datetime.fromisoformat(DS).replace(tzinfo=dt.timezone.utc),
        "params": process_params(dag, task, dag_run.conf, suppress_exception=False),
    }
    return cast("Context", context)


def render_step(
    dag: DAG, task_id: str, xcoms: dict[tuple[str, str], Any], map_index: int = -1
) -> RenderedStep:
    """Renders one task's templates and builds its pod with the real provider.

    For the mapped trainer this is what the task runner does (``RuntimeTaskInstance.
    render_templates``): ``MappedOperator.render_template_fields`` resolves the expand input for
    ``ti.map_index`` from the upstream XCom (``_expand_mapped_kwargs``), creates the concrete
    operator with ``unmap`` (partial kwargs + this index's ``arguments``), puts it into
    ``context["task"]`` and ``ti.task`` and renders it; the runner then executes that operator.
    """
    task = dag.get_task(task_id)
    ti = FakeTaskInstance(dag_id=dag.dag_id, task_id=task_id, map_index=map_index, xcoms=xcoms)
    context = template_context(dag, task, ti)
    task.render_template_fields(context)
    operator = context["task"]
    assert isinstance(operator, StepPodOperator), type(operator)
    pod = operator.build_pod_request_obj(context, dry_run=True)
    return RenderedStep(operator, ApiClient().sanitize_for_serialization(pod), ti)


def sweep_for(dag: DAG, preprocess_output: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """What the real ``hyperparameter_set`` task returns for this run (the trainer's XCom)."""
    task = dag.get_task("hyperparameter_set")
    assert isinstance(task, PythonOperator)  # the @task's operator
    function = task.python_callable
    params = process_params(dag, task, {}, suppress_exception=False)
    context = {"params": params, "ds": DS, "run_id": RUN_ID, "dag": dag}
    monkeypatch.setitem(function.__globals__, "get_current_context", lambda: context)
    return function({"validate": {}, "preprocess": {"output_uri": preprocess_output}})


@pytest.fixture
def render(
    write_config: Callable[..., Path],
    load_dag: Callable[[Path | None], DAG],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[dict[str, Any]], Rendered]:
    """Parses the DAG with the cluster config plus ``overrides`` and renders every step's pod;
    the trainer for map index 0."""
    # No metastore or API server: the provider's hook reads this (empty) connection.
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes"}))

    def rendered(overrides: dict[str, Any]) -> Rendered:
        path = write_config(overrides)
        config = load_config(path)
        dag = load_dag(path)
        xcoms: dict[tuple[str, str], Any] = {
            ("select_best", "run_id"): SELECTED_RUN_ID,
            ("evaluate", "return_value"): {"champion_version": COMPARED_CHAMPION},
        }
        steps = {step: render_step(dag, STEP_TASKS[step], xcoms) for step in DATA_STEPS}
        preprocess_output = arg_value(steps["preprocess"].args, "--output")
        xcoms[(DATA_READY, "return_value")] = data_results(preprocess_output)
        steps |= {step: render_step(dag, STEP_TASKS[step], xcoms) for step in MODEL_STEPS}
        sweep = sweep_for(dag, preprocess_output, monkeypatch)
        xcoms[("hyperparameter_set", "return_value")] = sweep
        steps["train"] = render_step(dag, STEP_TASKS["train"], xcoms, map_index=0)
        return Rendered(config, dag, sweep, {step: steps[step] for step in STEPS})

    return rendered


def arg_value(args: list[str], flag: str) -> str:
    """The value after ``flag``, which must appear exactly once."""
    assert args.count(flag) == 1, args
    return args[args.index(flag) + 1]


def all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


# --- how the pods are rendered -----------------------------------------------------------------


def test_mapped_trainer_is_unmapped_per_index_like_at_run_time(
    render: Callable[[dict[str, Any]], Rendered],
) -> None:
    rendered = render({})
    dag = rendered.dag
    mapped = dag.get_task(STEP_TASKS["train"])
    assert isinstance(mapped, MappedOperator)
    assert mapped.operator_class is StepPodOperator
    assert len(rendered.sweep) == 4  # the default grid: none, ple, periodic at two scales

    xcoms = {("hyperparameter_set", "return_value"): rendered.sweep}
    for index, trial in enumerate(rendered.sweep):
        step = render_step(dag, STEP_TASKS["train"], xcoms, map_index=index)
        assert step.ti.task is step.operator  # the runner's ti.task is the unmapped operator
        assert step.operator.task_id == STEP_TASKS["train"]
        # Values handed to expand() are not templated again: exactly what the XCom holds.
        assert step.args == trial["arguments"]
        assert step.pod["metadata"]["labels"]["map_index"] == str(index)
        assert {
            "task_ids": "hyperparameter_set",
            "key": "return_value",
            "map_indexes": None,
        }.items() <= step.ti.pulls[0].items()
    assert isinstance(dag.get_task(STEP_TASKS["train"]), MappedOperator)  # left untouched


def test_xcom_args_in_arguments_are_resolved_by_render_template_fields(
    render: Callable[[dict[str, Any]], Rendered],
) -> None:
    rendered = render({})
    for step in ("evaluate", "deploy"):
        pod_step = rendered.steps[step]
        assert arg_value(pod_step.args, "--run-id") == SELECTED_RUN_ID
        assert all(isinstance(arg, str) for arg in pod_step.args), pod_step.args
        pulled = [(p["task_ids"], p.get("key")) for p in pod_step.ti.pulls]
        # deploy also reads the champion version the evaluation compared with (a template);
        # both read the preprocess output from the checked data results
        champion = [("evaluate", None)] * (step == "deploy")
        assert pulled == [("select_best", "run_id"), *champion, (DATA_READY, None)]
        assert pod_step.operator.arguments == pod_step.args
    for step in ("validate", "preprocess"):
        assert rendered.steps[step].ti.pulls == []


# --- GPUs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", GPU_MODEL_CONFIGS.values(), ids=GPU_MODEL_CONFIGS)
def test_only_the_trainer_requests_gpus(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    rendered = render(overrides)
    train = rendered.steps["train"].base["resources"]
    assert rendered.config.gpu.count == 1
    assert train["limits"][GPU_RESOURCE] == "1"
    assert train["requests"][GPU_RESOURCE] == "1"
    for name, step in rendered:
        for container in all_containers(step.pod):
            resources = container.get("resources", {})
            names = {*resources.get("limits", {}), *resources.get("requests", {})}
            gpu = {n for n in names if "gpu" in n}
            expected = {GPU_RESOURCE} if (name, container["name"]) == ("train", BASE) else set()
            assert gpu == expected, (name, container["name"], resources)


def test_gpu_count_comes_from_the_config(render: Callable[[dict[str, Any]], Rendered]) -> None:
    resources = render(CUSTOM_CONFIG).steps["train"].base["resources"]
    assert resources["limits"][GPU_RESOURCE] == resources["requests"][GPU_RESOURCE] == "2"
    assert resources["limits"]["cpu"] == "16"
    assert resources["requests"]["memory"] == "32Gi"


@pytest.mark.parametrize("overrides", GPU_MODEL_CONFIGS.values(), ids=GPU_MODEL_CONFIGS)
def test_only_the_trainer_tolerates_the_gpu_taint(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    rendered = render(overrides)
    assert rendered.steps["train"].pod["spec"]["tolerations"] == [
        {"key": GPU_TAINT, "operator": "Exists", "effect": "NoSchedule"}
    ]
    for name in CPU_STEPS:
        assert not rendered.steps[name].pod["spec"].get("tolerations"), name


@pytest.mark.parametrize(
    ("overrides", "models"),
    [
        ({}, ("A100", "H100")),  # the shipped config: either model
        (GPU_MODEL_CONFIGS["a100"], ("A100",)),
        (GPU_MODEL_CONFIGS["h100"], ("H100",)),
        (GPU_MODEL_CONFIGS["a100-h100"], ("A100", "H100")),
    ],
    ids=list(GPU_MODEL_CONFIGS),
)
def test_trainer_requires_a_node_with_a_configured_gpu_model(
    render: Callable[[dict[str, Any]], Rendered],
    overrides: dict[str, Any],
    models: tuple[str, ...],
) -> None:
    rendered = render(overrides)
    assert rendered.config.gpu.models == models
    affinity = rendered.steps["train"].pod["spec"]["affinity"]
    assert set(affinity) == {"nodeAffinity"}
    node = affinity["nodeAffinity"]
    assert set(node) == {"requiredDuringSchedulingIgnoredDuringExecution"}
    (term,) = node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    (expression,) = term["matchExpressions"]
    assert expression["key"] == GPU_NODE_LABEL
    assert expression["operator"] == "In"
    values = expression["values"]
    assert values == rendered.config.gpu.product_values
    assert len(values) == len(set(values))
    for model, variants in GPU_PRODUCTS.items():
        wanted = set().union(*variants.values())
        if model in models:
            for form_factor, products in variants.items():
                assert products <= set(values), (model, form_factor, values)
        else:
            assert not wanted & set(values), (model, values)
            assert not any(model in value for value in values), (model, values)
    for name in CPU_STEPS:
        assert not rendered.steps[name].pod["spec"].get("affinity"), name
        assert not rendered.steps[name].pod["spec"].get("nodeSelector"), name


def test_gpu_node_label_and_taint_are_configurable(
    render: Callable[[dict[str, Any]], Rendered],
) -> None:
    spec = render(CUSTOM_LABEL_CONFIG).steps["train"].pod["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {
                    "key": "cloud.google.com/gke-accelerator",
                    "operator": "In",
                    "values": ["nvidia-tesla-a100", "nvidia-a100-80gb"],
                }
            ]
        }
    ]
    assert spec["tolerations"] == [
        {"key": "example.com/gpu-node", "operator": "Exists", "effect": "NoSchedule"}
    ]


# --- security ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", ALL_CONFIGS.values(), ids=ALL_CONFIGS)
def test_pods_meet_pod_security_restricted(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    for name, step in render(overrides):
        spec = step.pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        assert not any("hostPath" in v for v in spec.get("volumes", [])), name
        assert spec["automountServiceAccountToken"] is False, name
        containers = all_containers(step.pod)
        assert sorted(c["name"] for c in containers) == [XCOM_SIDECAR, BASE], name
        for container in containers:
            where = (name, container["name"])
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["runAsNonRoot"] is True, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert not context.get("privileged"), where
            assert context.get("runAsUser", 10001) != 0, where


@pytest.mark.parametrize("overrides", ALL_CONFIGS.values(), ids=ALL_CONFIGS)
def test_secrets_are_passed_by_reference_only(
    render: Callable[[dict[str, Any]], Rendered],
    overrides: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Credentials in the Airflow worker's own environment must never reach a pod spec.
    sentinels = {name: f"leaked-{name.lower()}-9c1e" for name in CREDENTIAL_ENV}
    for name, value in sentinels.items():
        monkeypatch.setenv(name, value)
    rendered = render(overrides)
    secrets = {s.env: s for s in rendered.config.secrets}
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY"} <= set(
        secrets
    )
    for name, step in rendered:
        text = json.dumps(step.pod)
        assert not [v for v in sentinels.values() if v in text], name
        env = {e["name"]: e for e in step.base["env"]}
        assert set(secrets) <= set(env), name
        for secret in secrets.values():
            assert env[secret.env] == {
                "name": secret.env,
                "valueFrom": {
                    "secretKeyRef": {"name": secret.secret, "key": secret.key, "optional": False}
                },
            }, (name, secret)
        for container in all_containers(step.pod):
            for var in container.get("env", []):
                if CREDENTIAL_NAME.search(var["name"]):
                    assert "value" not in var, (name, var)
                    assert "secretKeyRef" in var["valueFrom"], (name, var)
            assert not container.get("envFrom"), (name, container["name"])
            for arg in [*container.get("command", []), *container.get("args", [])]:
                assert not CREDENTIAL_NAME.search(arg.upper().replace("-", "_")), (name, arg)
                assert not re.search(r"://[^/\s]+@", arg), (name, arg)  # user:password@host
                assert not re.search(r"\$\(\w+\)", arg), (name, arg)  # $(VAR) expands env


# --- volumes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, CUSTOM_CONFIG], ids=["cluster", "custom"])
def test_trainer_gets_a_memory_backed_dev_shm(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    rendered = render(overrides)
    train = rendered.steps["train"]
    volume = train.volume(train.mounts()["/dev/shm"])
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": rendered.config.gpu.shm_size}
    assert rendered.config.gpu.shm_size == ("32Gi" if overrides else "16Gi")
    for name in CPU_STEPS:
        assert "/dev/shm" not in rendered.steps[name].mounts(), name


def test_every_step_mounts_the_data_volume_claim(
    render: Callable[[dict[str, Any]], Rendered],
) -> None:
    rendered = render(PVC_CONFIG)
    data = rendered.config.data
    assert data.volume_claim == "tabular-pipeline-data"
    assert data.root.startswith(data.mount_path + "/")
    for name, step in rendered:
        claims = [v for v in step.pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
        assert len(claims) == 1, name
        assert claims[0]["persistentVolumeClaim"] == {"claimName": data.volume_claim}, name
        assert step.mounts()[data.mount_path] == claims[0]["name"], name
    for step_name in ("validate", "preprocess"):
        output = arg_value(rendered.steps[step_name].args, "--output")
        assert output == rendered.run_path(step_name)
    for step_name in ("train", "evaluate"):
        path = arg_value(rendered.steps[step_name].args, "--data-path")
        assert path == rendered.run_path("preprocess")
        assert path.startswith(data.mount_path + "/")


def test_no_volume_claim_without_data_volume_claim(
    render: Callable[[dict[str, Any]], Rendered],
) -> None:
    for name, step in render({}):
        assert not [v for v in step.pod["spec"]["volumes"] if "persistentVolumeClaim" in v], name


@pytest.mark.parametrize("overrides", ALL_CONFIGS.values(), ids=ALL_CONFIGS)
def test_xcom_volume_is_shared_with_the_sidecar(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    for name, step in render(overrides):
        assert step.operator.do_xcom_push is True, name
        assert step.volume("xcom") == {"name": "xcom", "emptyDir": {}}, name
        assert step.mounts(BASE)["/airflow/xcom"] == "xcom", name
        assert step.mounts(XCOM_SIDECAR) == {"/airflow/xcom": "xcom"}, name


# --- command, arguments, identity --------------------------------------------------------------


@pytest.mark.parametrize("overrides", ALL_CONFIGS.values(), ids=ALL_CONFIGS)
def test_each_step_runs_its_module_on_run_scoped_paths(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    rendered = render(overrides)
    for name, step in rendered:
        module = STEP_MODULES[name]
        assert step.base["command"] == ["python", "-m", module], name
        assert (REPO / module.replace(".", "/") / "__main__.py").is_file(), module
        assert "{{" not in json.dumps(step.pod), name  # every template was rendered
    steps = rendered.steps
    validate, preprocess = steps["validate"].args, steps["preprocess"].args
    assert arg_value(validate, "--output") == rendered.run_path("validate")
    assert arg_value(validate, "--date") == DS
    # Kept across runs: one schema per DAG, beside (not inside) the run folders.
    assert (
        arg_value(validate, "--schema-store") == f"{rendered.config.data.root}/{DAG_ID}/schema.json"
    )
    assert arg_value(validate, "--source") == rendered.config.data.source.replace("{{ ds }}", DS)
    # Drift against the raw data the champion was trained on (the param's default).
    assert arg_value(validate, "--reference") == f"models:/{rendered.config.model_name}@champion"
    # A data reference only under the deployment's data root (the validator refuses others).
    assert arg_value(validate, "--allowed-reference-root") == rendered.config.data.root
    assert arg_value(preprocess, "--output") == rendered.run_path("preprocess")
    assert arg_value(preprocess, "--input") == arg_value(validate, "--source")
    # Both decide the task the same way: the config's (auto by default).
    assert arg_value(preprocess, "--task") == arg_value(validate, "--task")
    assert arg_value(validate, "--task") == rendered.config.data.task
    assert arg_value(steps["train"].args, "--data-path") == rendered.run_path("preprocess")
    # One experiment per model; each trial's run named for what tells it from the others and
    # tagged with the data date and this DAG run.
    assert arg_value(steps["train"].args, "--experiment-name") == rendered.config.model_name
    names = [arg_value(t["arguments"], "--run-name") for t in rendered.sweep]
    assert names == run_names([t["config"] for t in rendered.sweep])
    assert names[0].startswith("trial-0 ") and len(set(names)) == len(names)
    for i, trial in enumerate(rendered.sweep):
        args = trial["arguments"]
        tags = [args[k + 1] for k, flag in enumerate(args) if flag == "--tag"]
        assert tags == [
            f"data_date={DS}",
            f"airflow.dag_id={DAG_ID}",
            f"airflow.dag_run_id={RUN_ID}",
            f"sweep.trial={i}",
        ]
    # A GPU pod must not fall back to the CPU silently.
    assert arg_value(steps["train"].args, "--device") == "cuda"
    # Each trial resumes only its own checkpoints, and only within this DAG run.
    checkpoint_dirs = [arg_value(t["arguments"], "--checkpoint-dir") for t in rendered.sweep]
    assert checkpoint_dirs == [
        f"{rendered.run_path('train')}/trial-{i}/checkpoints" for i in range(len(rendered.sweep))
    ]
    evaluate = steps["evaluate"].args
    assert arg_value(evaluate, "--data-path") == rendered.run_path("preprocess")
    assert arg_value(evaluate, "--min-accuracy") == "0.0"
    assert arg_value(evaluate, "--confidence") == "0.95"
    assert steps["deploy"].args == [
        "--run-id",
        SELECTED_RUN_ID,
        "--model-name",
        rendered.config.model_name,
        "--expected-champion-version",
        str(COMPARED_CHAMPION),
        "--data-path",
        rendered.run_path("preprocess"),
        "--tag",
        f"airflow.dag_id={DAG_ID}",
        "--tag",
        f"airflow.dag_run_id={RUN_ID}",
        "--tag",
        f"data_date={DS}",
    ]


def test_deploy_expects_no_champion_when_the_evaluation_compared_with_none(
    write_config: Callable[..., Path],
    load_dag: Callable[[Path | None], DAG],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes"}))
    dag = load_dag(write_config({}))
    xcoms = {
        ("select_best", "run_id"): SELECTED_RUN_ID,
        ("evaluate", "return_value"): {"champion_version": None},
        (DATA_READY, "return_value"): data_results("s3://bucket/prepared"),
    }
    deploy = render_step(dag, STEP_TASKS["deploy"], xcoms)
    assert arg_value(deploy.operator.arguments, "--expected-champion-version") == "none"


@pytest.mark.parametrize("overrides", [{}, CUSTOM_CONFIG], ids=["cluster", "custom"])
def test_image_namespace_and_service_account_come_from_the_config(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    rendered = render(overrides)
    config = rendered.config
    if overrides:
        assert (config.image, config.namespace) == (CUSTOM_CONFIG["image"], "gpu-batch")
        assert config.service_account == "tabular-runner"
    for name, step in rendered:
        assert step.pod["metadata"]["namespace"] == config.namespace, name
        assert step.pod["spec"]["serviceAccountName"] == config.service_account, name
        assert step.base["image"] == config.image, name
        # The steps record the image in MLflow (run and model-version tags).
        env = {e["name"]: e.get("value") for e in step.base["env"]}
        assert env["TABULAR_PIPELINE_IMAGE"] == config.image, name
        assert step.base["imagePullPolicy"] == config.image_pull_policy, name
        pull_secrets = [s["name"] for s in step.pod["spec"]["imagePullSecrets"]]
        assert pull_secrets == list(config.image_pull_secrets), name
        labels = step.pod["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == name
        assert labels["dag_id"] == DAG_ID
        assert labels["task_id"] == STEP_TASKS[name]


@pytest.mark.parametrize("overrides", [{}, CUSTOM_CONFIG], ids=["cluster", "custom"])
def test_restart_policy_and_termination_grace_period(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    rendered = render(overrides)
    expected = 900 if overrides else 300
    assert rendered.config.trainer_grace_period_seconds == expected
    for name, step in rendered:
        spec = step.pod["spec"]
        assert spec["restartPolicy"] == "Never", name
        grace = expected if name == "train" else 30
        assert spec["terminationGracePeriodSeconds"] == grace, name
        assert step.operator.termination_grace_period == grace, name


@pytest.mark.parametrize("overrides", [{}, CUSTOM_CONFIG], ids=["cluster", "custom"])
def test_operator_timeouts_retries_and_pod_lifecycle(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    rendered = render(overrides)
    config = rendered.config
    assert config.startup_timeout_seconds == (3600 if overrides else 1800)
    assert config.retries == (4 if overrides else 2)
    for name, step in rendered:
        op = step.operator
        # Failed pods stay for `kubectl describe/logs`; succeeded ones are deleted.
        assert op.on_finish_action == OnFinishAction.DELETE_SUCCEEDED_POD, name
        assert op.log_events_on_failure is True, name
        assert op.get_logs is True, name
        assert op.do_xcom_push is True, name
        assert op.startup_timeout_seconds == config.startup_timeout_seconds >= 1800, name
        assert op.schedule_timeout_seconds == config.startup_timeout_seconds, name
        assert op.retries == config.retries, name
        assert op.retry_delay == dt.timedelta(seconds=config.retry_delay_seconds), name
        minutes = config.execution_timeout_minutes[name]
        assert op.execution_timeout == dt.timedelta(minutes=minutes) > dt.timedelta(0), name
    if overrides:
        assert rendered.steps["train"].operator.execution_timeout == dt.timedelta(hours=12)
        assert rendered.steps["deploy"].operator.execution_timeout == dt.timedelta(minutes=15)


# --- the Kubernetes API schema -----------------------------------------------------------------


@pytest.mark.parametrize("overrides", ALL_CONFIGS.values(), ids=ALL_CONFIGS)
def test_every_rendered_pod_is_valid_for_the_kubernetes_api(
    render: Callable[[dict[str, Any]], Rendered], overrides: dict[str, Any]
) -> None:
    for name, step in render(overrides):
        assert (step.pod["apiVersion"], step.pod["kind"]) == ("v1", "Pod")
        validated = kubernetes_validate.validate(step.pod, KUBERNETES_VERSION, strict=True)
        assert validated == KUBERNETES_VERSION, name


def _unknown_container_field(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"][0]["gpuCount"] = 1


def _unknown_spec_field(pod: dict[str, Any]) -> None:
    pod["spec"]["nodeAffinity"] = pod["spec"].pop("affinity")


def _container_without_name(pod: dict[str, Any]) -> None:
    del pod["spec"]["containers"][0]["name"]


def _string_run_as_user(pod: dict[str, Any]) -> None:
    pod["spec"]["securityContext"]["runAsUser"] = "10001"


def _toleration_as_mapping(pod: dict[str, Any]) -> None:
    pod["spec"]["tolerations"] = pod["spec"]["tolerations"][0]


@pytest.mark.parametrize(
    "breakage",
    [
        _unknown_container_field,
        _unknown_spec_field,
        _container_without_name,
        _string_run_as_user,
        _toleration_as_mapping,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_the_schema_validation_rejects_a_broken_pod(
    render: Callable[[dict[str, Any]], Rendered], breakage: Callable[[dict[str, Any]], None]
) -> None:
    pod = copy.deepcopy(render({}).steps["train"].pod)
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    breakage(pod)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_evaluate_and_deploy_read_the_data_location_from_the_preprocess_result(
    write_config: Callable[..., Path],
    load_dag: Callable[[Path | None], DAG],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not rebuilt from the path template: where preprocess says it wrote its output."""
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes"}))
    dag = load_dag(write_config({}))
    elsewhere = "s3://other-bucket/prepared/elsewhere"
    xcoms: dict[tuple[str, str], Any] = {
        ("select_best", "run_id"): SELECTED_RUN_ID,
        ("evaluate", "return_value"): {"champion_version": COMPARED_CHAMPION},
        (DATA_READY, "return_value"): data_results(elsewhere),
    }
    for step in MODEL_STEPS:
        args = render_step(dag, STEP_TASKS[step], xcoms).args
        assert arg_value(args, "--data-path") == elsewhere, step
