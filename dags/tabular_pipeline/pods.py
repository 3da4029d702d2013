"""The pod of each step, built from the config: the one image, resources, GPU placement,
Pod Security "restricted" contexts, secrets by reference, volumes, timeouts and retries.

``StepPodOperator`` is the provider's KubernetesPodOperator. With ``launcher: local`` it renders
exactly the same pod and runs its main container as a process on this machine instead
(``tabular_pipeline.local_pod``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

from tabular_pipeline.config import PipelineConfig

STEP_MODULES = {
    "validate": "validator",
    "preprocess": "preprocess",
    "train": "trainer",
    "evaluate": "evaluator",
    "deploy": "deployer",
    "score": "scorer",
}
DATA_VOLUME = "pipeline-data"
SHM_VOLUME = "dshm"
# Pods that did not succeed stay for `kubectl describe/logs`; successful ones are removed.
ON_FINISH_ACTION = "delete_succeeded_pod"
DEFAULT_GRACE_PERIOD_SECONDS = 30


class StepPodOperator(KubernetesPodOperator):
    """KubernetesPodOperator that can also run its rendered pod locally (``launcher="local"``).

    :param launcher: ``kubernetes`` (the provider's own execution) or ``local``.
    :param local_root: with ``local``, the folder under which each try gets its work folder.
    """

    def __init__(self, *, launcher: str = "kubernetes", local_root: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.launcher = launcher
        self.local_root = local_root
        self._local_process: Any = None

    def execute(self, context: Any) -> Any:
        if self.launcher != "local":
            return super().execute(context)
        from tabular_pipeline.local_pod import LocalPod, pod_workdir

        pod = self.build_pod_request_obj(context, dry_run=True)
        self._local_process = LocalPod(pod, pod_workdir(self.local_root, context), self.log)
        return self._local_process.run()

    def on_kill(self) -> None:
        if self.launcher != "local":
            super().on_kill()
        elif self._local_process is not None:
            self._local_process.stop()


def trainer_device(config: PipelineConfig) -> str:
    """``cuda`` in the cluster, so a GPU pod with a broken CUDA setup fails instead of training
    on the CPU for hours; ``auto`` locally, where the machine may have no GPU."""
    return "cuda" if config.launcher == "kubernetes" else "auto"


def run_folder(config: PipelineConfig, dag_id: str, run_id: str, step: str) -> str:
    """The run-scoped folder of a step's output: ``<root>/<dag_id>/<run_id>/<step>``, so reruns
    and backfills never write into another run's folder."""
    return f"{config.data.root}/{dag_id}/{run_id}/{step}"


def run_path(config: PipelineConfig, step: str) -> str:
    """``run_folder`` as a template, for operator arguments rendered at run time."""
    return run_folder(config, "{{ dag.dag_id }}", "{{ run_id }}", step)


def step_pod_kwargs(config: PipelineConfig, step: str) -> dict[str, Any]:
    """Every KubernetesPodOperator argument of ``step`` except task_id and arguments."""
    volumes, mounts = _volumes(config, step)
    gpu = step == "train"
    return {
        "name": f"tabular-{step}",
        "namespace": config.namespace,
        "image": config.image,
        "image_pull_policy": config.image_pull_policy,
        "image_pull_secrets": [
            k8s.V1LocalObjectReference(name=n) for n in config.image_pull_secrets
        ],
        "service_account_name": config.service_account,
        "automount_service_account_token": False,
        "kubernetes_conn_id": config.kubernetes_conn_id,
        "cmds": ["python", "-m", STEP_MODULES[step]],
        "env_vars": _env(config),
        "container_resources": _resources(config, step),
        "labels": {
            **config.labels,
            "app.kubernetes.io/name": "tabular-gpu-pipeline",
            "app.kubernetes.io/component": step,
        },
        "security_context": _pod_security_context(config),
        "container_security_context": _container_security_context(),
        "xcom_sidecar_container_security_context": _container_security_context(),
        "volumes": volumes,
        "volume_mounts": mounts,
        "affinity": _gpu_affinity(config) if gpu else None,
        "tolerations": _gpu_tolerations(config) if gpu else None,
        "termination_grace_period": (
            config.trainer_grace_period_seconds if gpu else DEFAULT_GRACE_PERIOD_SECONDS
        ),
        "startup_timeout_seconds": config.startup_timeout_seconds,
        "schedule_timeout_seconds": config.startup_timeout_seconds,
        "on_finish_action": ON_FINISH_ACTION,
        "log_events_on_failure": True,
        "get_logs": True,
        "do_xcom_push": True,
        "retries": config.retries,
        "retry_delay": dt.timedelta(seconds=config.retry_delay_seconds),
        "execution_timeout": dt.timedelta(minutes=config.execution_timeout_minutes[step]),
        "launcher": config.launcher,
        "local_root": config.data.root,
        **_pod_execution(config),
    }


def _pod_execution(config: PipelineConfig) -> dict[str, Any]:
    """How the operator waits for the pod. Only on the cluster: the local launcher runs the pod
    as a child of the task's own process, which cannot be handed to the triggerer."""
    execution = config.pod_execution
    on_cluster = config.launcher == "kubernetes"
    return {
        "deferrable": on_cluster and execution.deferrable,
        "logging_interval": execution.logging_interval_seconds if on_cluster else None,
        "durable": on_cluster and execution.durable,
    }


IMAGE_ENV = "TABULAR_PIPELINE_IMAGE"  # the steps tag MLflow runs and model versions with it


def _env(config: PipelineConfig) -> list[k8s.V1EnvVar]:
    values = {**config.env, IMAGE_ENV: config.image}
    plain = [k8s.V1EnvVar(name=name, value=value) for name, value in sorted(values.items())]
    secret = [
        k8s.V1EnvVar(
            name=s.env,
            value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=s.secret, key=s.key, optional=False)
            ),
        )
        for s in config.secrets
    ]
    return plain + secret


def _resources(config: PipelineConfig, step: str) -> k8s.V1ResourceRequirements:
    requests = dict(config.resources[step]["requests"])
    limits = dict(config.resources[step]["limits"])
    if step == "train" and config.gpu.count:
        # Extended resources are not overcommitted: request and limit must be equal.
        requests[config.gpu.resource] = limits[config.gpu.resource] = str(config.gpu.count)
    return k8s.V1ResourceRequirements(requests=requests, limits=limits)


def _pod_security_context(config: PipelineConfig) -> k8s.V1PodSecurityContext:
    uid = config.run_as_user
    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def _container_security_context() -> k8s.V1SecurityContext:
    """What Pod Security Standard "restricted" requires of every container."""
    return k8s.V1SecurityContext(
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        run_as_non_root=True,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def _volumes(
    config: PipelineConfig, step: str
) -> tuple[list[k8s.V1Volume], list[k8s.V1VolumeMount]]:
    volumes, mounts = [], []
    if config.data.volume_claim:
        volumes.append(
            k8s.V1Volume(
                name=DATA_VOLUME,
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=config.data.volume_claim
                ),
            )
        )
        mounts.append(k8s.V1VolumeMount(name=DATA_VOLUME, mount_path=config.data.mount_path))
    if step == "train":
        # PyTorch workers share tensors through /dev/shm, which is 64 MiB by default.
        volumes.append(
            k8s.V1Volume(
                name=SHM_VOLUME,
                empty_dir=k8s.V1EmptyDirVolumeSource(
                    medium="Memory", size_limit=config.gpu.shm_size
                ),
            )
        )
        mounts.append(k8s.V1VolumeMount(name=SHM_VOLUME, mount_path="/dev/shm"))
    return volumes, mounts


def _gpu_affinity(config: PipelineConfig) -> k8s.V1Affinity:
    """Only nodes whose GPU product label names one of the configured models."""
    term = k8s.V1NodeSelectorTerm(
        match_expressions=[
            k8s.V1NodeSelectorRequirement(
                key=config.gpu.node_label, operator="In", values=config.gpu.product_values
            )
        ]
    )
    return k8s.V1Affinity(
        node_affinity=k8s.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
                node_selector_terms=[term]
            )
        )
    )


def _gpu_tolerations(config: PipelineConfig) -> list[k8s.V1Toleration]:
    return [k8s.V1Toleration(key=config.gpu.taint_key, operator="Exists", effect="NoSchedule")]
