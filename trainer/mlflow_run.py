"""The trainer's MLflow run: started (or continued after a resume), tagged, fed one batched
call per epoch from a background thread, and always ended: FINISHED on success, KILLED when
training stopped on SIGTERM, FAILED on any other error, never left RUNNING."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import platform
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from common.tracking import configure_mlflow, image
from trainer.loop import EpochRecord, LoopOutcome, TrainingInterrupted

PACKAGE = "tabular-gpu-pipeline"
MAX_METRICS_PER_CALL = 1000  # MLflow's per-request limit


def code_version() -> str:
    """The installed version of this package ("unknown" when run from a source tree only)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def training_tags(data_fingerprint: str, world_size: int, checkpoint_dir: str) -> dict[str, str]:
    """Tags that say what produced the run: data, code, image, software, processes."""
    tags = {
        "data_fingerprint": data_fingerprint,
        "code_version": code_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "world_size": str(world_size),
        "checkpoint_dir": checkpoint_dir,
    }
    if (running_image := image()) is not None:
        tags["image"] = running_image
    return tags


@contextlib.contextmanager
def training_run(
    experiment_id: str, run_id: str | None, system_metrics_interval: float
) -> Iterator[Any]:
    """A new run in ``experiment_id``, or run ``run_id`` continued (a resumed training).
    System metrics (CPU, memory, GPU utilisation through pynvml on CUDA) are sampled every
    ``system_metrics_interval`` seconds by MLflow's background thread; 0 turns them off."""
    mlflow = configure_mlflow()
    sampling = system_metrics_interval > 0
    # Its start/stop chatter goes to stderr, which holds only the failure line of a step.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    if sampling:
        mlflow.set_system_metrics_sampling_interval(system_metrics_interval)
        mlflow.set_system_metrics_samples_before_logging(1)
    run = mlflow.start_run(
        run_id=run_id,
        experiment_id=None if run_id else experiment_id,
        log_system_metrics=sampling,
    )
    try:
        yield run
    except TrainingInterrupted:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def epoch_metrics(record: EpochRecord) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = {
        "train_loss": record.train_loss,
        "val_loss": record.val.loss,
        "val_accuracy": record.val.accuracy,
        "val_f1_score": record.val.f1_score,
        "samples_per_sec": record.samples_per_sec,
    }
    return [Metric(k, float(v), now, record.epoch) for k, v in values.items()]


def final_metrics(outcome: LoopOutcome) -> list[Any]:
    """The best epoch's metrics and the run's throughput (step 0)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    best = outcome.best.val
    values = {
        "accuracy": best.accuracy,
        "f1_score": best.f1_score,
        "loss": best.loss,
        "best_epoch": outcome.best_epoch,
        "train_samples_per_sec": outcome.samples_per_sec,
        "train_samples": outcome.train_samples,  # over every data-parallel process
    }
    return [Metric(k, float(v), now, 0) for k, v in values.items()]


class MetricLogger:
    """One ``log_batch`` per call, sent by a background thread in call order: the training loop
    never waits on MLflow. ``flush`` waits for everything sent so far and raises the first
    error (call it before the run ends). Not MLflow's own asynchronous logging: its flush and
    ``end_run`` each wait up to a second for its queue's polling thread, a fixed cost on every
    run."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.client = configure_mlflow().MlflowClient()
        self.sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-metrics")
        self.pending: list[Future[None]] = []

    def log(self, metrics: list[Any]) -> None:
        for start in range(0, len(metrics), MAX_METRICS_PER_CALL):
            batch = metrics[start : start + MAX_METRICS_PER_CALL]
            self.pending.append(self.sender.submit(self.client.log_batch, self.run_id, batch))

    def epoch(self, record: EpochRecord) -> None:
        self.log(epoch_metrics(record))

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for sent in pending:
            sent.result()
