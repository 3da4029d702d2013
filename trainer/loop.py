"""The training loop: data resident on the device, batches by indexing a shuffled permutation,
loss accumulated on the device and read once per epoch, best epoch (by validation loss) restored.
Per-step learning-rate schedule (linear warmup, then constant or cosine decay), optional
gradient clipping and class weights for imbalanced labels."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from trainer.metrics import ClassificationMetrics, classification_metrics
from trainer.network import TabularMLP, predict_proba

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine")
CLASS_WEIGHTS = ("none", "balanced")


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TensorSplit:
    numeric: torch.Tensor
    categorical: torch.Tensor
    target: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.target.shape[0])


@dataclass(frozen=True)
class LoopConfig:
    lr: float
    batch_size: int
    optimizer: str
    epochs: int
    weight_decay: float
    patience: int
    seed: int
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 turns clipping off
    class_weights: str = "none"


@dataclass(frozen=True)
class Optimization:
    """What one training step needs besides the data: optimizer, per-step LR schedule, loss
    weights per class (None: unweighted)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    class_weights: torch.Tensor | None


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val: ClassificationMetrics
    samples_per_sec: float


@dataclass
class LoopOutcome:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    train_samples: int = 0
    train_seconds: float = 0.0

    @property
    def samples_per_sec(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def best(self) -> EpochRecord:
        return self.history[self.best_epoch - 1]


def make_optimizer(net: nn.Module, config: LoopConfig) -> torch.optim.Optimizer:
    """Adam and AdamW use the fused CUDA kernel on a GPU (one launch for all parameters)."""
    params = list(net.parameters())
    fused = bool(params) and params[0].device.type == "cuda"
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=config.lr, weight_decay=config.weight_decay, fused=fused
        )
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose from {OPTIMIZERS}")


def lr_factor(step: int, config: LoopConfig, steps_per_epoch: int) -> float:
    """The learning-rate multiplier at optimizer step ``step`` (0-based): linear warmup over
    ``warmup_epochs``, then constant, or cosine decay to zero at the last step."""
    total = config.epochs * steps_per_epoch
    warmup = min(total, round(config.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    if config.lr_schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def balanced_class_weights(target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``rows / (classes * rows of the class)``: every class weighs the same in the loss."""
    counts = torch.bincount(target, minlength=n_classes).float()
    return counts.sum() / (n_classes * counts.clamp(min=1.0))


def make_optimization(net: TabularMLP, train: TensorSplit, config: LoopConfig) -> Optimization:
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr schedule {config.lr_schedule!r}; choose from {LR_SCHEDULES}")
    optimizer = make_optimizer(net, config)
    steps_per_epoch = math.ceil(train.rows / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config, steps_per_epoch)
    )
    weights = None
    if config.class_weights == "balanced":
        weights = balanced_class_weights(train.target, net.config.n_classes)
    elif config.class_weights != "none":
        raise ValueError(
            f"unknown class weights {config.class_weights!r}; choose from {CLASS_WEIGHTS}"
        )
    return Optimization(optimizer, scheduler, weights)


def evaluate(net: TabularMLP, split: TensorSplit) -> ClassificationMetrics:
    probabilities = predict_proba(net, split.numeric, split.categorical)
    return classification_metrics(probabilities.cpu().numpy(), split.target.cpu().numpy())


def train_epoch(
    net: TabularMLP,
    optimization: Optimization,
    train: TensorSplit,
    config: LoopConfig,
    generator: torch.Generator,
) -> float:
    """One pass over shuffled training data; returns the mean training loss."""
    device = train.target.device
    autocast = device.type == "cuda" and torch.cuda.is_bf16_supported()
    order = torch.randperm(train.rows, device=device, generator=generator)
    loss_sum = torch.zeros((), device=device)
    net.train()
    for start in range(0, train.rows, config.batch_size):
        idx = order[start : start + config.batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = net(train.numeric[idx], train.categorical[idx])
        loss = nn.functional.cross_entropy(
            logits.float(), train.target[idx], weight=optimization.class_weights
        )
        optimization.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip, foreach=True)
        optimization.optimizer.step()
        optimization.scheduler.step()
        loss_sum += loss.detach() * idx.shape[0]
    return float(loss_sum.item()) / train.rows  # the one host sync of the epoch


def fit(net: TabularMLP, train: TensorSplit, val: TensorSplit, config: LoopConfig) -> LoopOutcome:
    """Train ``net`` in place; on return it holds the weights of the best validation epoch."""
    device = train.target.device
    generator = torch.Generator(device=device).manual_seed(config.seed)
    optimization = make_optimization(net, train, config)
    outcome = LoopOutcome()
    best_state = copy.deepcopy(net.state_dict())
    loop_started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        train_loss = train_epoch(net, optimization, train, config, generator)
        seconds = time.perf_counter() - started
        if not math.isfinite(train_loss):
            raise DivergedError(f"training loss is {train_loss} at epoch {epoch}; lower --lr")
        outcome.train_samples += train.rows
        outcome.train_seconds += seconds
        record = EpochRecord(epoch, train_loss, evaluate(net, val), train.rows / seconds)
        outcome.history.append(record)
        if outcome.best_epoch == 0 or record.val.loss < outcome.best.val.loss:
            outcome.best_epoch = epoch
            best_state = copy.deepcopy(net.state_dict())
        # At most this long: early stopping can end the run sooner.
        eta = (time.perf_counter() - loop_started) / epoch * (config.epochs - epoch)
        log.info(
            "epoch %d/%d train_loss=%.4f val_loss=%.4f val_accuracy=%.4f samples/s=%.0f eta=%.0fs",
            epoch,
            config.epochs,
            train_loss,
            record.val.loss,
            record.val.accuracy,
            record.samples_per_sec,
            eta,
        )
        if epoch - outcome.best_epoch >= config.patience:
            log.info("early stop: no val_loss improvement for %d epochs", config.patience)
            break
    net.load_state_dict(best_state)
    return outcome
