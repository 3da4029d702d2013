"""A training run: load the preprocess output, build the network for its task (classification
or regression, as the fitted transform says), fit it (resuming from a checkpoint when there is
one; under torchrun on every rank), log the run and the served model to MLflow and build the
result (rank 0)."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from common import dataset, storage, tables
from common.metrics import RegressionMetrics
from common.step import StepError, UsageError
from common.tracking import (
    configure_mlflow,
    ensure_experiment,
    logged_model_uri,
    reaching_mlflow,
    redact_uri,
)
from contract.results import TrainResult
from tabular_model import integrity
from tabular_model.network import (
    ModelConfig,
    NetworkConfig,
    SettingError,
    TabularMLP,
    as_tensors,
    compiled,
)
from tabular_model.packaging import log_served_model
from trainer import distributed
from trainer.distributed import SINGLE_PROCESS, ProcessGroup
from trainer.interrupts import Interrupts, Preempted, checkpoint_timer, stop_on_sigterm
from trainer.loop import (
    DivergedError,
    LoopCallbacks,
    LoopConfig,
    LoopOutcome,
    LoopRuntime,
    TensorSplit,
    TrainingInterrupted,
    UnsupportedStateError,
    ValidationMetrics,
    fit,
)
from trainer.mlflow_run import (
    MetricLogger,
    final_metrics,
    log_data_inputs,
    training_run,
    training_tags,
)
from trainer.progress import on_terminal
from trainer.resume import RunCheckpoints
from trainer.run_options import RunOptions, Tracking

log = logging.getLogger(__name__)


# auto streams training data that would take more than this share of the free GPU memory
# (the rest is left to activations, the optimizer state and the validation split).
DEVICE_MEMORY_FRACTION = 0.5


@dataclass(frozen=True)
class TrainConfig:
    """A training run: its data and MLflow experiment, what it trains (``model``, ``loop``)
    and how it is carried out (``options``)."""

    data_path: str
    experiment_name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    options: RunOptions = field(default_factory=RunOptions)
    tracking: Tracking = field(default_factory=Tracking)


def make_deterministic() -> None:
    """Deterministic kernels only (warning where none exists); cuBLAS needs its workspace
    setting before CUDA starts."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def resolve_device(requested: str, group: ProcessGroup = SINGLE_PROCESS) -> torch.device:
    """The training device (under torchrun, the GPU of this process's local rank); on CUDA,
    fp32 matmuls may use TF32 (A100/H100 tensor cores)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise StepError("--device cuda: no CUDA device is available on this machine")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda", group.local_rank) if group.distributed else torch.device("cuda")
    return torch.device(requested)


def load_tensors(
    data_path: str, split: str, transform: dataset.TableTransform, device: torch.device
) -> TensorSplit:
    """One split of the preprocess output, encoded by ``transform``, as tensors on ``device``."""
    encoded = dataset.load_split(data_path, transform, split)
    if encoded.rows == 0:
        raise StepError(f"{dataset.split_uri(data_path, split)} has no rows")
    numeric, categorical = as_tensors(encoded.numeric, encoded.categorical, device)
    # int64 class codes, or a float32 standardised regression target
    return TensorSplit(numeric, categorical, torch.from_numpy(encoded.target).to(device))


def split_bytes(split: TensorSplit) -> int:
    return sum(t.element_size() * t.nelement() for t in vars(split).values())


def decide_streaming(placement: str, train: TensorSplit, device: torch.device) -> bool:
    """Whether the training tensors stay in host memory and stream to the device, for the
    ``--data-placement`` value ``placement``: ``auto`` streams when they would take more than
    DEVICE_MEMORY_FRACTION of the free GPU memory."""
    if placement != "auto" or device.type != "cuda":
        return placement == "stream"
    free, _ = torch.cuda.mem_get_info(device)
    return split_bytes(train) > DEVICE_MEMORY_FRACTION * free


def place(split: TensorSplit, device: torch.device, stream_from_host: bool) -> TensorSplit:
    """On the device, or left in host memory when streamed (each chunk is gathered into
    pinned memory for its copy, so the whole split need not be page-locked)."""
    if stream_from_host:
        return split
    return TensorSplit(*(t.to(device) for t in vars(split).values()))


def load_data(
    config: TrainConfig, transform: dataset.TableTransform, device: torch.device
) -> tuple[TensorSplit, TensorSplit, bool]:
    """Train and val splits placed for training, and whether training data streams from host
    memory."""
    host = torch.device("cpu")
    train_split = load_tensors(config.data_path, "train", transform, host)
    val_split = load_tensors(config.data_path, "val", transform, host)
    if np.unique(train_split.target.numpy()).size < 2:
        one = "a constant target" if transform.is_regression else "one class"
        raise StepError(f"{dataset.split_uri(config.data_path, 'train')}: train split has {one}")
    streamed = decide_streaming(config.options.data_placement, train_split, device)
    if streamed:
        log.info("training data (%d MB) streams to %s", split_bytes(train_split) >> 20, device)
    return place(train_split, device, streamed), place(val_split, device, streamed), streamed


def data_fingerprint(data_path: str) -> str:
    """The preprocess manifest's data fingerprint when it has one; otherwise a fingerprint of
    the files the trainer reads (train and val splits, transform)."""
    manifest = dataset.read_manifest(data_path)
    for key in ("fingerprint", "data_fingerprint"):
        if isinstance(manifest.get(key), str):
            return str(manifest[key])
    uris = [dataset.split_uri(data_path, s) for s in ("train", "val")]
    parts = [storage.fingerprint(uri) for uri in [*uris, dataset.transform_uri(data_path)]]
    return "sha256:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


def hyperparameters(config: TrainConfig) -> dict[str, str | int | float]:
    """What decides the trained model: every model and optimisation setting, and the two run
    options that change the numbers (deterministic kernels, torch.compile). The result's
    ``hyperparameters``, the MLflow params (with a few more) and part of the run's identity."""
    options = config.options
    loop = asdict(config.loop)
    if loop["loss"] == "auto":  # a classification's cross-entropy: recorded as before --loss
        del loop["loss"]
    return {
        **asdict(config.model),
        **loop,
        "deterministic": options.deterministic,
        "compile": options.compile,
    }


def for_task(config: TrainConfig, transform: dataset.TableTransform) -> TrainConfig:
    """``config`` for the task of the data ``transform`` encodes (a regression's auto loss
    resolved to MSE); a setting that does not apply to the task is a ``UsageError`` naming its
    flag and the data's target."""
    try:
        loop = config.loop.for_task(transform.task)
    except SettingError as exc:
        flag = "--" + exc.setting.replace("_", "-")
        where = dataset.transform_uri(config.data_path)
        raise UsageError(
            f"{flag} {exc.problem}; {where} is of a {transform.task} target {transform.target!r}"
        ) from exc
    return replace(config, loop=loop)


def build_network(
    config: TrainConfig, transform: dataset.TableTransform, train_split: TensorSplit
) -> TabularMLP:
    """The untrained network of ``config.model`` for the data ``transform`` encodes, seeded by
    the run's seed (PLE bin edges from ``train_split``)."""
    torch.manual_seed(config.loop.seed)
    network = NetworkConfig.for_data(
        config.model,
        train_split.numeric,
        cardinalities=tuple(c.cardinality for c in transform.categorical),
        n_classes=1 if transform.is_regression else len(transform.classes),
        task=transform.task,
    )
    return TabularMLP(network)


def with_budget(config: TrainConfig, train_rows: int) -> TrainConfig:
    """``config`` with an auto (0) batch size and epochs count set for ``train_rows``: what the
    run records (MLflow params, result, checkpoint identity) are the values it trains with."""
    loop = config.loop.for_rows(train_rows)
    if loop != config.loop:
        log.info(
            "auto budget for %d training rows: batch size %d, at most %d epochs",
            train_rows,
            loop.batch_size,
            loop.epochs,
        )
    return replace(config, loop=loop)


@dataclass(frozen=True)
class Prepared:
    """A training process ready to fit: the run's config with its auto optimisation budget set
    for the training rows, data placed, network built, how the loop runs, the run's checkpoints,
    and the MLflow run a resume continues (None: a new run)."""

    config: TrainConfig
    transform: dataset.TableTransform
    net: TabularMLP
    train: TensorSplit
    val: TensorSplit
    runtime: LoopRuntime
    checkpoints: RunCheckpoints
    resumed_run_id: str | None
    fingerprint: str  # of the data


def prepare(
    config: TrainConfig, group: ProcessGroup, device: torch.device, interrupts: Interrupts
) -> Prepared:
    """Load and place the data, set the auto optimisation budget, find the run's latest
    checkpoint, build the network."""
    transform = dataset.load_transform(config.data_path)
    config = for_task(config, transform)
    train_split, val_split, streamed = load_data(config, transform, device)
    config = with_budget(config, train_split.rows)
    fingerprint = data_fingerprint(config.data_path)
    identity = {
        "experiment_name": config.experiment_name,
        "data_path": config.data_path,
        "data_fingerprint": fingerprint,
        "config": hyperparameters(config),
    }
    checkpoints = RunCheckpoints(config.options.checkpoint, identity)
    resume = checkpoints.resume_point()
    net = build_network(config, transform, train_split).to(device)
    runtime = LoopRuntime(
        interrupts=interrupts,
        checkpoint_every_epochs=config.options.checkpoint_every_epochs,
        resume=resume.snapshot if resume else None,
        stream_from_host=streamed,
        device=device,
        # A compiled wrapper trains net's own parameters; net is what gets saved.
        forward=compiled(net) if config.options.compile else None,
        group=group,
        progress=group.is_main and on_terminal(),
        target_scaling=transform.target_scaling,
    )
    resumed_run_id = resume.mlflow_run_id if resume else None
    return Prepared(
        config,
        transform,
        net,
        train_split,
        val_split,
        runtime,
        checkpoints,
        resumed_run_id,
        fingerprint,
    )


def run_fit(
    config: TrainConfig, p: Prepared, callbacks: LoopCallbacks | None = None
) -> LoopOutcome:
    """Fit with the periodic checkpoint timer on; training failures become ``StepError``."""
    try:
        with checkpoint_timer(p.runtime.interrupts, config.options.checkpoint_every_minutes):
            return fit(p.net, p.train, p.val, config.loop, p.runtime, callbacks)
    except DivergedError as exc:
        raise StepError(str(exc)) from exc
    except UnsupportedStateError as exc:
        raise StepError(f"--checkpoint-dir {p.checkpoints.shown}: {exc}") from exc
    except torch._dynamo.exc.BackendCompilerFailed as exc:  # e.g. no C/C++ compiler
        reason = str(exc).splitlines()[0]
        raise StepError(f"--compile: torch.compile failed: {reason}") from exc


def start_logging(config: TrainConfig, p: Prepared, run_id: str) -> MetricLogger:
    """Params and tags of a new run (a resumed run has them already); returns the run's metric
    logger."""
    mlflow = configure_mlflow()
    if p.resumed_run_id is None:
        log_data_inputs(config.data_path, p.fingerprint)
        mlflow.log_params(
            {
                **hyperparameters(config),
                "data_path": redact_uri(config.data_path),
                "device": str(p.runtime.device),
                "train_rows": p.train.rows,
                "task": p.transform.task,
            }
        )
    tags = training_tags(p.fingerprint, p.runtime.group.world_size, p.checkpoints.uri)
    tags["task"] = p.transform.task
    tags["data_placement"] = "stream" if p.runtime.stream_from_host else "device"
    mlflow.set_tags({**dict(config.tracking.tags), **tags})
    return MetricLogger(run_id)


def train_and_log(config: TrainConfig, p: Prepared) -> TrainResult:
    """Rank 0: fit inside the MLflow run (continued on a resume), log the model, return the
    result; the run's checkpoints are deleted once the model is safely logged. A tracking
    server that does not answer fails the step naming it (credentials masked)."""
    example = tables.read_table(dataset.raw_uri(config.data_path, "sample"))
    interval = config.options.system_metrics_interval
    with reaching_mlflow():
        experiment_id = ensure_experiment(config.experiment_name)
        run_name = config.tracking.run_name
        with training_run(experiment_id, p.resumed_run_id, interval, run_name) as run:
            run_id = run.info.run_id
            logger = start_logging(config, p, run_id)
            # The checkpoint writer records the run id, so that a resume continues this run.
            saver = p.checkpoints.saver(run_id)
            outcome = run_fit(config, p, LoopCallbacks(on_epoch=logger.epoch, checkpoint=saver))
            model_uri = log_results(p, run_id, logger, outcome, example)
    p.checkpoints.clear()
    return summarise(config, p, outcome, run_id, model_uri)


def log_results(
    p: Prepared, run_id: str, logger: MetricLogger, outcome: LoopOutcome, example: pd.DataFrame
) -> str:
    """Log the best epoch's metrics and the model into run ``run_id``; returns the model's
    URI. A resumed run that holds its model already (the attempt before got past logging it,
    not past deleting the checkpoints) is given neither again: a retry returns that model."""
    if p.resumed_run_id is not None and (logged := logged_model_uri(run_id)) is not None:
        log.info("run %s holds its model already (%s); not logging another", run_id, logged)
        logger.flush()
        # The attempt before may have stopped between logging the model and recording its
        # files' sha256 (the record is keyed by the model's id, so a model logged again on a
        # resume gets a record of its own and no run param is ever changed).
        model_id = logged.removeprefix("models:/")
        if not integrity.has_record(model_id, run_id):
            integrity.record_logged_model(model_id, run_id)
        return logged
    logger.log(final_metrics(outcome))
    logger.flush()
    return str(log_served_model(p.net.cpu(), p.transform, example).model_uri)


def summarise(
    config: TrainConfig, p: Prepared, outcome: LoopOutcome, run_id: str, model_uri: str
) -> TrainResult:
    """The run's summary line and its result: the kept weights' validation metrics."""
    best = outcome.kept
    device, world_size = str(p.runtime.device), p.runtime.group.world_size
    log.info(
        "run %s: %s, %.0f samples/s on %s x%d",
        run_id,
        summary_text(best),
        outcome.samples_per_sec,
        device,
        world_size,
    )
    return TrainResult(
        task=p.transform.task,
        **result_metrics(best),
        model_path=model_uri,
        run_id=run_id,
        experiment_name=config.experiment_name,
        samples_per_sec=outcome.samples_per_sec,
        epochs=len(outcome.history),
        device=device,
        hyperparameters=hyperparameters(config),
        world_size=world_size,
        resumed=p.resumed_run_id is not None,
        data_fingerprint=p.fingerprint,
    )


def summary_text(best: ValidationMetrics) -> str:
    if isinstance(best, RegressionMetrics):
        return f"val rmse {best.rmse:.4g} mae {best.mae:.4g} r2 {best.r2:.4f} loss {best.loss:.4f}"
    return f"val accuracy {best.accuracy:.4f} f1 {best.f1_score:.4f} loss {best.loss:.4f}"


def result_metrics(best: ValidationMetrics) -> dict[str, Any]:
    """The result's metrics of the task (the other task's stay null)."""
    if isinstance(best, RegressionMetrics):
        return {"rmse": best.rmse, "mae": best.mae, "r2": best.r2, "loss": best.loss}
    return {"accuracy": best.accuracy, "f1_score": best.f1_score, "loss": best.loss}


def train(config: TrainConfig) -> TrainResult | None:
    """Train in this process (one of several under torchrun). Returns the result on rank 0,
    None on the other ranks. SIGTERM: checkpoint, MLflow run KILLED, exit 143."""
    group = distributed.from_environment()
    if config.options.deterministic:
        make_deterministic()
    device = resolve_device(config.options.device, group)
    if not group.is_main:  # one log line per epoch, from rank 0
        logging.getLogger("trainer").setLevel(logging.WARNING)
    distributed.start(group, device)
    interrupts = group.interrupts(device)
    try:
        with stop_on_sigterm(interrupts):
            prepared = prepare(config, group, device, interrupts)
            try:
                if not group.is_main:
                    run_fit(prepared.config, prepared)
                    return None
                return train_and_log(prepared.config, prepared)
            except TrainingInterrupted as exc:
                raise Preempted(
                    f"{exc} ({prepared.checkpoints.shown}); the same command resumes from it"
                ) from exc
    finally:
        distributed.stop(group)
