"""``python -m trainer``: train the tabular MLP on a preprocess output and log it to MLflow.
Every reported metric is measured on the validation split; the test split is left to the
evaluator."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from common import dataset, storage
from common.step import StepArgumentParser, StepError, run_step
from common.tracking import configure_mlflow, ensure_experiment
from contract.results import TrainResult
from tabular_model.network import (
    NUMERIC_EMBEDDINGS,
    EmbeddingOptions,
    NetworkConfig,
    TabularMLP,
    as_tensors,
    compiled,
)
from tabular_model.packaging import log_served_model
from trainer import distributed
from trainer.distributed import SINGLE_PROCESS, ProcessGroup
from trainer.interrupts import Interrupts, Preempted, checkpoint_timer, stop_on_sigterm
from trainer.loop import (
    CLASS_WEIGHTS,
    LR_SCHEDULES,
    OPTIMIZERS,
    DivergedError,
    LoopConfig,
    LoopHooks,
    LoopOutcome,
    TensorSplit,
    TrainingInterrupted,
    fit,
)
from trainer.mlflow_run import MetricLogger, final_metrics, run_tags, training_run
from trainer.progress import on_terminal
from trainer.resume import CheckpointOptions, ResumePoint, RunCheckpoints

log = logging.getLogger(__name__)

DATA_PLACEMENTS = ("auto", "device", "stream")
# auto streams training data that would take more than this share of the free GPU memory
# (the rest is left to activations, the optimizer state and the validation split).
DEVICE_MEMORY_FRACTION = 0.5


@dataclass(frozen=True)
class TrainConfig:
    data_path: str
    experiment_name: str
    device: str
    width: int
    depth: int
    dropout: float
    deterministic: bool
    loop: LoopConfig
    embedding: EmbeddingOptions
    compile: bool
    checkpoint: CheckpointOptions = field(default_factory=lambda: CheckpointOptions(None))
    system_metrics_interval: float = 10.0  # seconds; 0: off
    data_placement: str = "auto"


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog="python -m trainer", description=__doc__)
    p.add_argument("--data-path", required=True, help="the --output folder of preprocess")
    p.add_argument("--experiment-name", required=True, help="MLflow experiment")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--batch-size", type=int, default=1024, help="training batch size")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw", help="optimizer")
    p.add_argument("--epochs", type=int, default=20, help="maximum epochs")
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience (epochs)")
    p.add_argument("--width", type=int, default=256, help="hidden layer width")
    p.add_argument("--depth", type=int, default=3, help="hidden layers")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout rate")
    p.add_argument("--weight-decay", type=float, default=1e-5, help="weight decay")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="cosine", help="after the warmup")
    p.add_argument(
        "--warmup-epochs", type=float, default=1.0, help="linear learning-rate warmup (epochs)"
    )
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm; 0: off")
    p.add_argument(
        "--class-weights",
        choices=CLASS_WEIGHTS,
        default="none",
        help="balanced: every class weighs the same in the loss (imbalanced labels)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms only (same result on every run; slower on CUDA)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto uses CUDA when present",
    )
    add_network_flags(p)
    add_operation_flags(p)
    return p


def add_operation_flags(p: argparse.ArgumentParser) -> None:
    """Checkpoints, MLflow system metrics and data placement: how a run is carried out, not
    what it computes (not hyperparameters)."""
    p.add_argument(
        "--checkpoint-dir",
        default=None,
        help="checkpoint folder URI (local, file://, s3://); the run resumes from its latest "
        "checkpoint. Default: $PIPELINE_HOME/checkpoints/<hash of experiment, data, config>",
    )
    p.add_argument(
        "--checkpoint-every-epochs", type=int, default=1, help="checkpoint every N epochs; 0: off"
    )
    p.add_argument(
        "--checkpoint-every-minutes",
        type=float,
        default=10.0,
        help="also checkpoint every M minutes, mid-epoch if need be; 0: off",
    )
    p.add_argument(
        "--system-metrics-interval",
        type=float,
        default=10.0,
        help="seconds between MLflow system metrics samples (CPU, memory, GPU); 0: off",
    )
    p.add_argument(
        "--data-placement",
        choices=DATA_PLACEMENTS,
        default="auto",
        help="device: training data resident on the device; stream: in host memory, copied "
        "in chunks; auto: stream when it would not fit in half the free GPU memory",
    )


def add_network_flags(p: argparse.ArgumentParser) -> None:
    """Numeric feature embeddings and torch.compile."""
    defaults = EmbeddingOptions()
    p.add_argument(
        "--numeric-embedding",
        choices=NUMERIC_EMBEDDINGS,
        default=defaults.numeric_embedding,
        help="embed each numeric feature: periodic (PLR) or ple (piecewise-linear, bins from "
        "training quantiles); none feeds them to the MLP as they are",
    )
    p.add_argument(
        "--embedding-dim",
        type=int,
        default=defaults.embedding_dim,
        help="size of each numeric feature's embedding",
    )
    p.add_argument(
        "--periodic-sigma",
        type=float,
        default=defaults.periodic_sigma,
        help="std of the initial periodic frequencies (scale of the standardised features)",
    )
    p.add_argument(
        "--ple-bins", type=int, default=defaults.ple_bins, help="piecewise-linear bins per feature"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network for training (first epoch slower; needs a C++ compiler "
        "on CPU)",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    for flag in ("lr", "batch_size", "epochs", "width", "depth", "patience"):
        if getattr(args, flag) <= 0:
            raise StepError(
                f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}"
            )
    if not 0 <= args.dropout < 1:
        raise StepError(f"--dropout must be in [0, 1), got {args.dropout}")
    for flag in ("weight_decay", "warmup_epochs", "grad_clip"):
        if getattr(args, flag) < 0:
            raise StepError(
                f"--{flag.replace('_', '-')} must not be negative, got {getattr(args, flag)}"
            )
    for flag in ("embedding_dim", "ple_bins"):
        if getattr(args, flag) <= 0:
            raise StepError(
                f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}"
            )
    if not 0 < args.periodic_sigma < float("inf"):
        raise StepError(f"--periodic-sigma must be a positive number, got {args.periodic_sigma}")
    checkpoint = checkpoint_options(args)
    loop = LoopConfig(
        lr=args.lr,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        epochs=args.epochs,
        weight_decay=args.weight_decay,
        patience=args.patience,
        seed=args.seed,
        lr_schedule=args.lr_schedule,
        warmup_epochs=args.warmup_epochs,
        grad_clip=args.grad_clip,
        class_weights=args.class_weights,
    )
    return TrainConfig(
        args.data_path.rstrip("/"),
        args.experiment_name,
        args.device,
        args.width,
        args.depth,
        args.dropout,
        args.deterministic,
        loop,
        EmbeddingOptions(
            args.numeric_embedding, args.embedding_dim, args.periodic_sigma, args.ple_bins
        ),
        args.compile,
        checkpoint=checkpoint,
        system_metrics_interval=args.system_metrics_interval,
        data_placement=args.data_placement,
    )


def checkpoint_options(args: argparse.Namespace) -> CheckpointOptions:
    for flag in ("checkpoint_every_epochs", "checkpoint_every_minutes", "system_metrics_interval"):
        value = getattr(args, flag)
        if not 0 <= value < float("inf"):
            raise StepError(f"--{flag.replace('_', '-')} must not be negative, got {value}")
    if args.checkpoint_dir is not None and not args.checkpoint_dir.strip():
        raise StepError("--checkpoint-dir is empty")
    return CheckpointOptions(
        args.checkpoint_dir, args.checkpoint_every_epochs, args.checkpoint_every_minutes
    )


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
    encoded = dataset.load_split(data_path, transform, split)
    if encoded.rows == 0:
        raise StepError(f"{dataset.split_uri(data_path, split)} has no rows")
    numeric, categorical = as_tensors(encoded.numeric, encoded.categorical, device)
    return TensorSplit(numeric, categorical, torch.from_numpy(encoded.target).to(device))


def split_bytes(split: TensorSplit) -> int:
    return sum(t.element_size() * t.nelement() for t in vars(split).values())


def streams(placement: str, train: TensorSplit, device: torch.device) -> bool:
    """Whether the training tensors stay in host memory and stream to the device: ``auto``
    streams when they would take more than DEVICE_MEMORY_FRACTION of the free GPU memory."""
    if placement != "auto" or device.type != "cuda":
        return placement == "stream"
    free, _ = torch.cuda.mem_get_info(device)
    return split_bytes(train) > DEVICE_MEMORY_FRACTION * free


def place(split: TensorSplit, device: torch.device, stream: bool) -> TensorSplit:
    """On the device, or left in host memory when streamed (each chunk is gathered into
    pinned memory for its copy, so the whole split need not be page-locked)."""
    if stream:
        return split
    return TensorSplit(*(t.to(device) for t in vars(split).values()))


def load_data(
    config: TrainConfig, transform: dataset.TableTransform, device: torch.device
) -> tuple[TensorSplit, TensorSplit, bool]:
    """Train and val splits placed for training, and whether training data is streamed."""
    host = torch.device("cpu")
    train_split = load_tensors(config.data_path, "train", transform, host)
    val_split = load_tensors(config.data_path, "val", transform, host)
    if np.unique(train_split.target.numpy()).size < 2:
        raise StepError(
            f"{dataset.split_uri(config.data_path, 'train')}: train split has one class"
        )
    stream = streams(config.data_placement, train_split, device)
    if stream:
        log.info("training data (%d MB) streams to %s", split_bytes(train_split) >> 20, device)
    return place(train_split, device, stream), place(val_split, device, stream), stream


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
    return {
        "width": config.width,
        "depth": config.depth,
        "dropout": config.dropout,
        "deterministic": config.deterministic,
        **asdict(config.loop),
        **asdict(config.embedding),
        "compile": config.compile,
    }


def build_network(
    config: TrainConfig, transform: dataset.TableTransform, train_split: TensorSplit
) -> TabularMLP:
    torch.manual_seed(config.loop.seed)
    return TabularMLP(
        NetworkConfig(
            numeric_features=len(transform.numeric_feature_names),
            cardinalities=tuple(c.cardinality for c in transform.categorical),
            n_classes=len(transform.classes),
            width=config.width,
            depth=config.depth,
            dropout=config.dropout,
            **config.embedding.network_fields(train_split.numeric),
        )
    )


@dataclass
class Prepared:
    """A training process ready to fit: data placed, network built, checkpoint found."""

    config: TrainConfig
    device: torch.device
    transform: dataset.TableTransform
    net: TabularMLP
    train: TensorSplit
    val: TensorSplit
    hooks: LoopHooks
    checkpoints: RunCheckpoints
    resume: ResumePoint | None
    fingerprint: str


def prepare(
    config: TrainConfig, group: ProcessGroup, device: torch.device, interrupts: Interrupts
) -> Prepared:
    transform = dataset.load_transform(config.data_path)
    train_split, val_split, stream = load_data(config, transform, device)
    fingerprint = data_fingerprint(config.data_path)
    identity = {
        "experiment_name": config.experiment_name,
        "data_path": config.data_path,
        "data_fingerprint": fingerprint,
        "config": hyperparameters(config),
    }
    checkpoints = RunCheckpoints(config.checkpoint, identity)
    resume = checkpoints.resume_point()
    net = build_network(config, transform, train_split).to(device)
    hooks = LoopHooks(
        interrupts=interrupts,
        checkpoint_every_epochs=config.checkpoint.every_epochs,
        resume=resume.snapshot if resume else None,
        stream=stream,
        device=device,
        # A compiled wrapper trains net's own parameters; net is what gets saved.
        forward=compiled(net) if config.compile else None,
        group=group,
        progress=group.is_main and on_terminal(),
    )
    return Prepared(
        config, device, transform, net, train_split, val_split, hooks, checkpoints, resume,
        fingerprint,
    )  # fmt: skip


def run_fit(p: Prepared) -> LoopOutcome:
    try:
        with checkpoint_timer(p.hooks.interrupts, p.config.checkpoint.every_minutes):
            return fit(p.net, p.train, p.val, p.config.loop, p.hooks)
    except DivergedError as exc:
        raise StepError(str(exc)) from exc
    except torch._dynamo.exc.BackendCompilerFailed as exc:  # e.g. no C/C++ compiler
        reason = str(exc).splitlines()[0]
        raise StepError(f"--compile: torch.compile failed: {reason}") from exc


def start_logging(p: Prepared, run_id: str, group: ProcessGroup) -> MetricLogger:
    """Params and tags of a new run (a resumed run has them already); the epoch logger and the
    checkpoint hook, which records the run id so that a resume continues this run."""
    mlflow = configure_mlflow()
    if p.resume is None:
        mlflow.log_params(
            {
                **hyperparameters(p.config),
                "data_path": p.config.data_path,
                "device": str(p.device),
                "train_rows": p.train.rows,
            }
        )
    tags = run_tags(p.fingerprint, group.world_size, p.checkpoints.uri)
    tags["data_placement"] = "stream" if p.hooks.stream else "device"
    mlflow.set_tags(tags)
    logger = MetricLogger(run_id)
    p.hooks.on_epoch = logger.epoch
    p.hooks.checkpoint = p.checkpoints.saver(run_id)
    return logger


def train_and_log(p: Prepared, group: ProcessGroup) -> TrainResult:
    """Rank 0: fit inside the MLflow run (continued on a resume), log the model, return the
    result; the run's checkpoints are deleted once the model is safely logged."""
    example = storage.read_table(dataset.raw_uri(p.config.data_path, "sample"))
    experiment_id = ensure_experiment(p.config.experiment_name)
    previous_run = p.resume.mlflow_run_id if p.resume else None
    with training_run(experiment_id, previous_run, p.config.system_metrics_interval) as run:
        logger = start_logging(p, run.info.run_id, group)
        outcome = run_fit(p)
        logger.log(final_metrics(outcome))
        logger.flush()
        model_info = log_served_model(p.net.cpu(), p.transform, example)
    p.checkpoints.clear()
    best = outcome.best.val
    log.info(
        "run %s: val accuracy %.4f f1 %.4f loss %.4f, %.0f samples/s on %s x%d",
        run.info.run_id,
        best.accuracy,
        best.f1_score,
        best.loss,
        outcome.samples_per_sec,
        p.device,
        group.world_size,
    )
    return TrainResult(
        accuracy=best.accuracy,
        f1_score=best.f1_score,
        loss=best.loss,
        model_path=model_info.model_uri,
        run_id=run.info.run_id,
        experiment_name=p.config.experiment_name,
        samples_per_sec=outcome.samples_per_sec,
        epochs=len(outcome.history),
        device=str(p.device),
        hyperparameters=hyperparameters(p.config),
        world_size=group.world_size,
        resumed=p.resume is not None,
        data_fingerprint=p.fingerprint,
    )


def train(config: TrainConfig) -> TrainResult | None:
    """Train in this process (one of several under torchrun). Returns the result on rank 0,
    None on the other ranks. SIGTERM: checkpoint, MLflow run KILLED, exit 143."""
    group = distributed.from_environment()
    if config.deterministic:
        make_deterministic()
    device = resolve_device(config.device, group)
    if not group.is_main:  # one log line per epoch, from rank 0
        logging.getLogger("trainer").setLevel(logging.WARNING)
    distributed.start(group, device)
    interrupts = group.interrupts(device)
    try:
        with stop_on_sigterm(interrupts):
            prepared = prepare(config, group, device, interrupts)
            try:
                if not group.is_main:
                    run_fit(prepared)
                    return None
                return train_and_log(prepared, group)
            except TrainingInterrupted as exc:
                raise Preempted(
                    f"{exc} ({prepared.checkpoints.uri}); the same command resumes from it"
                ) from exc
    finally:
        distributed.stop(group)


def main(argv: Sequence[str] | None = None) -> int:
    return run_step("train", build_parser(), lambda args: train(config_from_args(args)), argv)


def main_entry() -> None:
    raise SystemExit(main())
