"""The trainer's MLflow run: started (or continued after a resume), tagged, fed one batched
call per epoch from a background thread, and always ended: FINISHED on success, KILLED when
training stopped on SIGTERM, FAILED on any other error, never left RUNNING."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import platform
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import PurePosixPath
from typing import Any

import torch

from common import dataset
from common.metrics import RegressionMetrics
from common.step import StepError
from common.tracking import (
    configure_mlflow,
    first_line,
    image,
    reaching_mlflow,
    redact_uri,
    request_bound_seconds,
    shown_tracking_uri,
)
from trainer.loop import EpochRecord, LoopOutcome, TrainingInterrupted, ValidationMetrics

log = logging.getLogger(__name__)

PACKAGE = "tabular-gpu-pipeline"
MAX_METRICS_PER_CALL = 1000  # MLflow's per-request limit
FLUSH_SLACK_S = 5.0  # seconds a flush waits beyond one request's bound
DATASET_DIGEST_CHARS = 16  # of a sha256 hex digest; MLflow stores at most 36


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
        "checkpoint_dir": redact_uri(checkpoint_dir),
    }
    if (running_image := image()) is not None:
        tags["image"] = running_image
    return tags


@contextlib.contextmanager
def training_run(
    experiment_id: str,
    run_id: str | None,
    system_metrics_interval: float,
    run_name: str | None = None,
) -> Iterator[Any]:
    """A new run in ``experiment_id`` named ``run_name`` (None: MLflow picks one), or run
    ``run_id`` continued (a resumed training, which keeps its name).
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
        run_name=None if run_id else run_name,
        log_system_metrics=sampling,
    )
    try:
        yield run
    except TrainingInterrupted:
        end_after_error(mlflow, "KILLED")
        raise
    except BaseException:
        end_after_error(mlflow, "FAILED")
        raise
    mlflow.end_run("FINISHED")


LOG_INPUTS_ATTEMPTS = 3
LOG_INPUTS_RETRY_S = 0.5


def log_data_inputs(data_path: str, fingerprint: str) -> None:
    """The run's data as MLflow dataset inputs, the lineage MLflow's UI shows: the file
    preprocess read (context ``source``) and the train and validation splits made from it
    (``training``, ``validation``), each with its rows. The digests: the data's ``fingerprint``
    for the source, and for a split that of the manifest, which fixes how it was cut; so
    the same data is the same dataset in every run. A URI MLflow cannot describe is left out
    with a warning: lineage never fails a training."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    manifest = dataset.read_manifest(data_path)
    counts = manifest.get("row_counts", {})
    source = redact_uri(str(manifest.get("source") or data_path))
    name = PurePosixPath(source.rstrip("/")).name or source
    cut = json.dumps(manifest, sort_keys=True)
    entries = [(source, name, fingerprint, "source", None)] if "source" in manifest else []
    for split, context in (("train", "training"), ("val", "validation")):
        digest = hashlib.sha256(f"{cut}\0{split}".encode()).hexdigest()
        uri = redact_uri(dataset.split_uri(data_path, split))
        entries.append((uri, f"{name}:{split}", digest, context, counts.get(split)))
    datasets: list[Any] = []
    contexts: list[str | None] = []
    tags: list[dict[str, str] | None] = []
    for uri, dataset_name, digest, context, rows in entries:
        try:
            with warnings.catch_warnings():  # "can be interpreted in multiple ways": all local
                warnings.simplefilter("ignore", UserWarning)
                described = resolve_dataset_source(uri)
        except Exception as exc:
            log.warning("not logging %s as an MLflow dataset: %s", uri, first_line(exc))
            continue
        digest = digest.removeprefix("sha256:")[:DATASET_DIGEST_CHARS]
        described_data = MetaDataset(described, name=dataset_name, digest=digest)  # type: ignore[abstract]
        datasets.append(described_data)
        contexts.append(context)
        tags.append({"rows": str(rows)} if rows is not None else None)
    mlflow = configure_mlflow()
    for attempt in range(1, LOG_INPUTS_ATTEMPTS + 1):
        try:
            mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=tags)
            return
        except Exception as exc:
            # The sweep's trials log the same datasets at once, and the tracking store may refuse
            # the second insert of one (a unique key); a retry finds it there and links it.
            if attempt == LOG_INPUTS_ATTEMPTS:
                log.warning("not logging the run's datasets: %s", first_line(exc))
            else:
                time.sleep(LOG_INPUTS_RETRY_S * attempt)


def end_after_error(mlflow: Any, status: str) -> None:
    """End the active run as ``status`` after an error, without hiding that error: when the
    server does not take it (it may be what failed), a warning says so and the run stays
    RUNNING there."""
    try:
        mlflow.end_run(status)
    except Exception as exc:
        where = shown_tracking_uri()
        log.warning("could not mark MLflow run %s at %s: %s", status, where, first_line(exc))


def task_metrics(val: ValidationMetrics) -> dict[str, float]:
    """The validation metrics of the task by name: loss with accuracy and f1_score, or with
    rmse, mae and r2 (in the target's units)."""
    if isinstance(val, RegressionMetrics):
        return {"loss": val.loss, "rmse": val.rmse, "mae": val.mae, "r2": val.r2}
    return {"loss": val.loss, "accuracy": val.accuracy, "f1_score": val.f1_score}


def epoch_metrics(record: EpochRecord) -> list[Any]:
    """An epoch's metrics (step: the epoch): train_loss, the validation metrics prefixed
    ``val_`` (val_loss, val_accuracy, val_f1_score; or val_loss, val_rmse, val_mae, val_r2),
    samples_per_sec."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = {
        "train_loss": record.train_loss,
        **{f"val_{k}": v for k, v in task_metrics(record.val).items()},
        "samples_per_sec": record.samples_per_sec,
    }
    return [Metric(k, float(v), now, record.epoch) for k, v in values.items()]


def final_metrics(outcome: LoopOutcome) -> list[Any]:
    """The kept weights' validation metrics (unprefixed, as in the result), the last epoch that
    improved them and the run's throughput (step 0)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = {
        **task_metrics(outcome.kept),
        "best_epoch": outcome.best_epoch,
        "train_samples_per_sec": outcome.samples_per_sec,
        "train_samples": outcome.train_samples,  # over every data-parallel process
    }
    return [Metric(k, float(v), now, 0) for k, v in values.items()]


class MetricLogger:
    """One ``log_batch`` per call, sent by a background thread in call order: the training loop
    never waits on MLflow. Once a batch fails, later ones are not sent (each would wait out the
    same unanswering server). ``flush`` waits for everything sent so far, at most one request's
    bound plus FLUSH_SLACK_S, and raises the first error (call it before the run ends). Not
    MLflow's own asynchronous logging: its flush and ``end_run`` each wait up to a second for
    its queue's polling thread, a fixed cost on every run."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.client = configure_mlflow().MlflowClient()
        # The request in flight ends within one request's bound (MLflow's bounded retries),
        # plus the client's own time around it; the ones queued behind it are quick, or are
        # not sent once one has failed.
        self.flush_timeout = request_bound_seconds() + FLUSH_SLACK_S
        self.sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-metrics")
        self.pending: list[Future[None]] = []
        self.stopped = threading.Event()  # set once a batch failed: later ones are not sent

    def log(self, metrics: list[Any]) -> None:
        for start in range(0, len(metrics), MAX_METRICS_PER_CALL):
            batch = metrics[start : start + MAX_METRICS_PER_CALL]
            self.pending.append(self.sender.submit(self._send, batch))

    def _send(self, batch: list[Any]) -> None:
        """Send one batch, unless one before it failed: a server that stopped answering
        would hold each of them for a request's whole bound."""
        if self.stopped.is_set():
            raise StepError("metrics not sent: an earlier batch of them failed")
        try:
            self.client.log_batch(self.run_id, batch)
        except BaseException:
            self.stopped.set()
            raise

    def epoch(self, record: EpochRecord) -> None:
        self.log(epoch_metrics(record))

    def flush(self) -> None:
        """Wait until everything logged so far is sent, ``flush_timeout`` seconds at most. On
        the first failure, or past that time, stop sending and raise: a StepError naming the
        tracking URI (credentials masked) when the server did not answer, else its error."""
        pending, self.pending = self.pending, []
        done, not_done = wait(pending, timeout=self.flush_timeout, return_when=FIRST_EXCEPTION)
        errors = [e for f in pending if f in done and (e := f.exception()) is not None]
        if errors or not_done:
            self.stopped.set()
        if errors:
            with reaching_mlflow():
                raise errors[0]
        if not_done:
            raise StepError(
                f"MLflow at {shown_tracking_uri()} did not take the run's metrics within "
                f"{self.flush_timeout:.0f} s"
            )
