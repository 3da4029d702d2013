"""``python -m trainer``: train the tabular MLP on a preprocess output and log it to MLflow.
Every reported metric is measured on the validation split; the test split is left to the
evaluator."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from contract.results import TrainResult
from contract.step import StepArgumentParser, StepError, run_step
from contract.tracking import configure_mlflow, ensure_experiment
from preprocess import dataset, io
from trainer.loop import (
    CLASS_WEIGHTS,
    LR_SCHEDULES,
    OPTIMIZERS,
    DivergedError,
    LoopConfig,
    LoopOutcome,
    TensorSplit,
    fit,
)
from trainer.network import NetworkConfig, TabularMLP, as_tensors
from trainer.packaging import log_served_model

log = logging.getLogger(__name__)


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
    return p


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
    )


def make_deterministic() -> None:
    """Deterministic kernels only (warning where none exists); cuBLAS needs its workspace
    setting before CUDA starts."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def resolve_device(requested: str) -> torch.device:
    """The training device; on CUDA, fp32 matmuls may use TF32 (A100/H100 tensor cores)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise StepError("--device cuda: no CUDA device is available on this machine")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return torch.device(requested)


def load_tensors(
    data_path: str, split: str, transform: dataset.TableTransform, device: torch.device
) -> TensorSplit:
    encoded = dataset.load_split(data_path, transform, split)
    if encoded.rows == 0:
        raise StepError(f"{dataset.split_uri(data_path, split)} has no rows")
    numeric, categorical = as_tensors(encoded.numeric, encoded.categorical, device)
    return TensorSplit(numeric, categorical, torch.from_numpy(encoded.target).to(device))


def hyperparameters(config: TrainConfig) -> dict[str, str | int | float]:
    return {
        "width": config.width,
        "depth": config.depth,
        "dropout": config.dropout,
        "deterministic": config.deterministic,
        **asdict(config.loop),
    }


def train(config: TrainConfig) -> TrainResult:
    if config.deterministic:
        make_deterministic()
    device = resolve_device(config.device)
    transform = dataset.load_transform(config.data_path)
    train_split = load_tensors(config.data_path, "train", transform, device)
    val_split = load_tensors(config.data_path, "val", transform, device)
    if np.unique(train_split.target.cpu().numpy()).size < 2:
        raise StepError(
            f"{dataset.split_uri(config.data_path, 'train')}: train split has one class"
        )
    example = io.read_table(dataset.raw_uri(config.data_path, "sample"))
    torch.manual_seed(config.loop.seed)
    net = TabularMLP(
        NetworkConfig(
            numeric_features=len(transform.numeric_feature_names),
            cardinalities=tuple(c.cardinality for c in transform.categorical),
            n_classes=len(transform.classes),
            width=config.width,
            depth=config.depth,
            dropout=config.dropout,
        )
    ).to(device)
    mlflow = configure_mlflow()
    experiment_id = ensure_experiment(config.experiment_name)
    with mlflow.start_run(experiment_id=experiment_id) as run:  # ends FAILED on an exception
        mlflow.log_params(
            {
                **hyperparameters(config),
                "data_path": config.data_path,
                "device": str(device),
                "train_rows": train_split.rows,
            }
        )
        mlflow.set_tags({"torch": torch.__version__, "python": platform.python_version()})
        try:
            outcome = fit(net, train_split, val_split, config.loop)
        except DivergedError as exc:
            raise StepError(str(exc)) from exc
        log_history(mlflow, run.info.run_id, outcome)
        model_info = log_served_model(net.cpu(), transform, example)
    best = outcome.best.val
    log.info(
        "run %s: val accuracy %.4f f1 %.4f loss %.4f, %.0f samples/s on %s",
        run.info.run_id,
        best.accuracy,
        best.f1_score,
        best.loss,
        outcome.samples_per_sec,
        device,
    )
    return TrainResult(
        accuracy=best.accuracy,
        f1_score=best.f1_score,
        loss=best.loss,
        model_path=model_info.model_uri,
        run_id=run.info.run_id,
        experiment_name=config.experiment_name,
        samples_per_sec=outcome.samples_per_sec,
        epochs=len(outcome.history),
        device=str(device),
        hyperparameters=hyperparameters(config),
    )


def log_history(mlflow: object, run_id: str, outcome: LoopOutcome) -> None:
    """All epoch metrics in one batched call (no synchronous MLflow call per step)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = []
    for record in outcome.history:
        values = {
            "train_loss": record.train_loss,
            "val_loss": record.val.loss,
            "val_accuracy": record.val.accuracy,
            "val_f1_score": record.val.f1_score,
            "samples_per_sec": record.samples_per_sec,
        }
        metrics += [Metric(k, v, now, record.epoch) for k, v in values.items()]
    best = outcome.best.val
    final = {
        "accuracy": best.accuracy,
        "f1_score": best.f1_score,
        "loss": best.loss,
        "best_epoch": outcome.best_epoch,
        "train_samples_per_sec": outcome.samples_per_sec,
    }
    metrics += [Metric(k, float(v), now, 0) for k, v in final.items()]
    client = mlflow.MlflowClient()  # type: ignore[attr-defined]
    for start in range(0, len(metrics), 1000):  # MLflow's per-request limit
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def main(argv: Sequence[str] | None = None) -> int:
    return run_step("train", build_parser(), lambda args: train(config_from_args(args)), argv)


def main_entry() -> None:
    raise SystemExit(main())
