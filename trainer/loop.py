"""The training loop: data resident on the device (or streamed to it in chunks), batches by
indexing a shuffled permutation, loss accumulated on the device and read once per epoch, a
moving average of the weights validated and kept (``WeightAverage``), best epoch (by validation
loss) restored, each network of a pair at its own. Per-step learning-rate schedule (linear
warmup, then constant or cosine decay), optional gradient clipping and class weights for
imbalanced labels.
The network's task decides the loss: cross-entropy over classes, or MSE (or Huber) on a
regression target standardised by the transform, with validation RMSE, MAE and R² reported in
the target's own units.

The loop never touches files: it hands checkpoint snapshots (tensors and plain types) to a
callback and resumes from one, so that an interrupted and resumed run ends exactly like an
uninterrupted one (same weights, same metrics; bitwise on the CPU), at an epoch boundary or
mid-epoch."""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch
from torch import nn

from common.metrics import (
    ClassificationMetrics,
    RegressionMetrics,
    classification_metrics,
    regression_metrics,
)
from tabular_model.network import TabularMLP, predict_proba, predict_values
from tabular_model.transform import TargetScaling
from trainer.distributed import SINGLE_PROCESS, ProcessGroup
from trainer.interrupts import Interrupts
from trainer.loop_config import CLASS_WEIGHTS as CLASS_WEIGHTS
from trainer.loop_config import LOSSES as LOSSES
from trainer.loop_config import LR_SCHEDULES as LR_SCHEDULES
from trainer.loop_config import OPTIMIZERS as OPTIMIZERS
from trainer.loop_config import LoopConfig as LoopConfig
from trainer.progress import epoch_bar

log = logging.getLogger(__name__)

# 2: with the moving average of the weights and each network's best loss; 3: a pair's periodic
# network takes its categorical columns one-hot (its weights no longer fit a format 2 state)
STATE_FORMAT = 3


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


class UnsupportedStateError(ValueError):
    """A checkpoint's training state was written in a format this trainer does not resume."""


class TrainingInterrupted(RuntimeError):
    """Training stopped on request (SIGTERM) after writing a checkpoint."""


@dataclass(frozen=True)
class TensorSplit:
    numeric: torch.Tensor
    categorical: torch.Tensor
    target: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.target.shape[0])


@dataclass(frozen=True)
class Optimization:
    """What one training step needs besides the data: optimizer, per-step LR schedule, loss
    weights per class (None: unweighted), and the moving average of the weights that each
    step updates (None: the trained weights are the ones kept)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    class_weights: torch.Tensor | None
    average: WeightAverage | None = None


class WeightAverage:
    """An exponential moving average of a network's parameters, in a copy of the network
    (``net``) that is validated, early-stopped and saved in place of the trained one: averaging
    the last few hundred steps' weights smooths out the noise of the latest minibatches.

    Updated after every optimizer step, bias-corrected as Adam corrects its moments: after t
    steps the average is ``sum_i decay^(t-i) w_i / sum_i decay^(t-i)`` over the trained weights
    w_1..w_t, so the first steps' weights count as much as they should and the initial weights
    not at all (one foreach lerp per step at rate ``(1 - decay) / (1 - decay^t)``; no host
    sync). ``torch.optim.swa_utils.AveragedModel`` is not used: it has no bias correction, so
    a short run's average stays near the initial weights, and it reads its step counter on the
    host at every update, a GPU sync per step. The buffers are constants rebuilt from the
    network's config, so only parameters are averaged."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.net = copy.deepcopy(net)
        self.net.requires_grad_(False)
        self.decay = decay
        self.steps = 0  # updates so far
        self._averaged: list[torch.Tensor] = list(self.net.parameters())
        self._trained: list[torch.Tensor] = list(net.parameters())

    def update(self) -> None:
        self.steps += 1
        rate = (1.0 - self.decay) / (1.0 - self.decay**self.steps)
        with torch.no_grad():
            torch._foreach_lerp_(self._averaged, self._trained, rate)


ValidationMetrics = ClassificationMetrics | RegressionMetrics


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val: ValidationMetrics  # the task's metrics on the validation split
    samples_per_sec: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        """Inverse of ``to_dict``."""
        return cls(**{**data, "val": metrics_from_dict(data["val"])})


def metrics_from_dict(data: dict[str, Any]) -> ValidationMetrics:
    """Validation metrics from their ``asdict``: their own keys say which task they are of."""
    return RegressionMetrics(**data) if "rmse" in data else ClassificationMetrics(**data)


@dataclass
class LoopOutcome:
    """The epochs' record. ``best_epoch`` is the last epoch that improved the kept weights (the
    patience counts from it). A pair of networks keeps each network's weights from its own best
    epoch: ``kept_val`` then holds the validation metrics of that combination, which no single
    epoch scored (None: the kept weights are ``best_epoch``'s)."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    train_samples: int = 0  # over every process
    train_seconds: float = 0.0
    stopped_early: bool = False
    kept_val: ValidationMetrics | None = None

    @property
    def samples_per_sec(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def best(self) -> EpochRecord:
        return self.history[self.best_epoch - 1]

    @property
    def kept(self) -> ValidationMetrics:
        """The validation metrics of the weights the run keeps."""
        return self.best.val if self.kept_val is None else self.kept_val

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "history": [r.to_dict() for r in self.history]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopOutcome:
        history = [EpochRecord.from_dict(r) for r in data["history"]]
        kept = data.get("kept_val")
        kept_val = None if kept is None else metrics_from_dict(kept)
        return cls(**{**data, "history": history, "kept_val": kept_val})


@dataclass(frozen=True)
class LoopCallbacks:
    """What the loop hands out, both optional: ``on_epoch`` sees each finished epoch;
    ``checkpoint`` receives each snapshot (see ``Training.snapshot``) to write. Without it no
    checkpoint is written, though a stop asked for by the interrupts still ends the run."""

    on_epoch: Callable[[EpochRecord], None] | None = None
    checkpoint: Callable[[dict[str, Any]], None] | None = None


@dataclass(frozen=True)
class LoopRuntime:
    """How and where the loop runs; the defaults train in this one process, on the device the
    training data is on, from scratch.

    ``interrupts`` are polled between steps; a snapshot goes to the checkpoint callback when they
    ask and every ``checkpoint_every_epochs`` epochs (0: only when asked). ``resume``: a snapshot
    to go on from. ``stream_from_host``: the training tensors stay in host memory and go to
    ``device`` in copies of ``stream_chunk_steps`` batches. ``forward``: the module the training
    steps call instead of the net (e.g. its ``torch.compile`` wrapper; it must share the net's
    parameters). ``group``: the data-parallel processes. ``progress``: show a bar over the
    steps. ``target_scaling``: how a regression target was standardised, so that validation
    RMSE and MAE come in the target's units (None: on the standardised scale)."""

    interrupts: Interrupts = field(default_factory=Interrupts)
    checkpoint_every_epochs: int = 0
    resume: dict[str, Any] | None = None
    stream_from_host: bool = False
    device: torch.device | None = None
    stream_chunk_steps: int = 64
    forward: nn.Module | None = None
    group: ProcessGroup = SINGLE_PROCESS
    progress: bool = False
    target_scaling: TargetScaling | None = None


@dataclass
class EpochCursor:
    """An epoch in progress: this process's permutation, the next step and the loss so far."""

    order: torch.Tensor
    next_step: int
    loss_sum: torch.Tensor
    seconds: float = 0.0  # training time spent in this epoch before the last interruption


def make_optimizer(net: nn.Module, config: LoopConfig) -> torch.optim.Optimizer:
    """The optimizer ``config`` names over ``net``'s parameters. Adam and AdamW use the fused
    CUDA kernel on a GPU (one launch for all parameters)."""
    params = list(net.parameters())
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    adam = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    fused = bool(params) and params[0].device.type == "cuda"
    return adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


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


def make_optimization(
    net: TabularMLP,
    train: TensorSplit,
    config: LoopConfig,
    rows_per_epoch: int | None = None,
    device: torch.device | None = None,
) -> Optimization:
    """Optimizer, schedule and class weights; ``rows_per_epoch`` is what this process trains
    on per epoch (default: all of ``train``), ``device`` where the weights go (default: the
    data's)."""
    config = config.for_rows(train.rows)  # an auto batch size or epochs count set
    optimizer = make_optimizer(net, config)
    steps_per_epoch = math.ceil((rows_per_epoch or train.rows) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config, steps_per_epoch)
    )
    weights = None
    if config.class_weights == "balanced" and not is_regression(net):
        weights = balanced_class_weights(train.target, net.config.n_classes)
        weights = weights.to(device or train.target.device)
    average = WeightAverage(net, config.ema_decay) if config.ema_decay > 0 else None
    return Optimization(optimizer, scheduler, weights, average)


def is_regression(net: TabularMLP) -> bool:
    return net.config.task == "regression"


Predict = Callable[[TabularMLP, torch.Tensor, torch.Tensor], torch.Tensor]


def predictions(
    net: TabularMLP, split: TensorSplit, predict: Predict, chunk_rows: int
) -> torch.Tensor:
    """``predict`` of ``net`` over ``split``, on the net's device; a split kept in host memory
    goes there in chunks of ``chunk_rows``."""
    device = next(net.parameters()).device
    if split.target.device == device:
        return predict(net, split.numeric, split.categorical)
    return torch.cat(
        [
            predict(
                net,
                split.numeric[i : i + chunk_rows].to(device, non_blocking=True),
                split.categorical[i : i + chunk_rows].to(device, non_blocking=True),
            )
            for i in range(0, split.rows, chunk_rows)
        ]
    )


def validation_metrics(
    net: TabularMLP,
    split: TensorSplit,
    chunk_rows: int = 1 << 20,
    loss: str = "mse",
    target_scaling: TargetScaling | None = None,
) -> ValidationMetrics:
    """The metrics of ``net`` on ``split``: a classifier's from its class probabilities; a
    regression network's loss (``loss``: mse or huber) on the standardised target and its
    RMSE, MAE and R² in the target's units (``target_scaling``; None: standardised units)."""
    predict = predict_values if is_regression(net) else predict_proba
    predicted = predictions(net, split, predict, chunk_rows)
    return metrics_of(predicted, split, is_regression(net), loss, target_scaling)


def network_predictions(
    net: TabularMLP, split: TensorSplit, chunk_rows: int = 1 << 20
) -> list[torch.Tensor]:
    """Per network of ``net`` (one, or each of a pair): its class probabilities [rows, classes]
    or standardised values [rows] on ``split``; their mean is what ``net`` predicts."""
    predict = predict_values if is_regression(net) else predict_proba
    return [predictions(network, split, predict, chunk_rows) for _, network in net.networks()]


def metrics_of(
    predicted: torch.Tensor,
    split: TensorSplit,
    regression: bool,
    loss: str = "mse",
    target_scaling: TargetScaling | None = None,
) -> ValidationMetrics:
    """``validation_metrics`` of predictions made: class probabilities, or standardised values
    of a regression."""
    if not regression:
        return classification_metrics(predicted.cpu().numpy(), split.target.cpu().numpy())
    predicted = predicted.float()
    actual = split.target.to(predicted.device).float()
    value = regression_loss(predicted, actual, loss)
    predicted_np, actual_np = predicted.cpu().numpy(), actual.cpu().numpy()
    if target_scaling is not None:
        predicted_np = target_scaling.unscale(predicted_np)
        actual_np = target_scaling.unscale(actual_np)
    return regression_metrics(predicted_np, actual_np, float(value))


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def device_batches(
    train: TensorSplit, order: torch.Tensor, first_step: int, batch_size: int
) -> Iterator[Batch]:
    """Batches of device-resident data: one gather per step by the permutation."""
    for start in range(first_step * batch_size, order.shape[0], batch_size):
        idx = order[start : start + batch_size]
        yield train.numeric[idx], train.categorical[idx], train.target[idx]


def gather_rows(tensor: torch.Tensor, idx: torch.Tensor, pinned: bool) -> torch.Tensor:
    """``tensor[idx]`` on the host; with ``pinned``, straight into page-locked memory (from
    PyTorch's caching host allocator, which keeps a buffer until its copy has finished)."""
    if not pinned:
        return tensor[idx]
    out = torch.empty((idx.shape[0], *tensor.shape[1:]), dtype=tensor.dtype, pin_memory=True)
    return torch.index_select(tensor, 0, idx, out=out)


def streamed_batches(
    train: TensorSplit,
    order: torch.Tensor,
    first_step: int,
    batch_size: int,
    device: torch.device,
    chunk_steps: int,
) -> Iterator[Batch]:
    """Batches of data kept in host memory: the rows of ``chunk_steps`` batches are gathered
    on the host (into pinned memory on CUDA) and copied in one non-blocking transfer, then
    sliced into batches; the host gathers the next chunk while the device computes."""
    host_order = order.cpu()  # one host sync per epoch
    pinned = device.type == "cuda"
    chunk = batch_size * chunk_steps
    for chunk_start in range(first_step * batch_size, host_order.shape[0], chunk):
        idx = host_order[chunk_start : chunk_start + chunk]
        numeric, categorical, target = (
            gather_rows(t, idx, pinned).to(device, non_blocking=True)
            for t in (train.numeric, train.categorical, train.target)
        )
        for i in range(0, idx.shape[0], batch_size):
            rows = slice(i, i + batch_size)
            yield numeric[rows], categorical[rows], target[rows]


def regression_loss(predicted: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """The mean ``loss`` (huber, with delta 1 on the standardised scale; otherwise MSE) of
    ``predicted`` against ``target`` of the same shape."""
    if loss == "huber":
        return nn.functional.huber_loss(predicted, target, delta=1.0)
    return nn.functional.mse_loss(predicted, target)


def training_loss(
    logits: torch.Tensor, target: torch.Tensor, optimization: Optimization, config: LoopConfig
) -> torch.Tensor:
    """Cross-entropy of ``logits`` [batch, classes] against ``target``, class-weighted and
    label-smoothed as ``optimization`` and ``config`` say. An ensemble's logits [batch, k,
    classes] give the mean of its members' losses: each member learns on its own.

    A float ``target`` is a standardised regression target: the outputs [batch, 1] (ensemble:
    [batch, k, 1]) are its predictions, scored by ``config.loss`` (MSE or Huber), again the
    mean of the members' losses."""
    if target.is_floating_point():
        predicted = logits.squeeze(-1)
        if predicted.dim() == 2:  # an ensemble: every member against the same target
            target = target.unsqueeze(1).expand_as(predicted)
        return regression_loss(predicted, target, config.loss)
    if logits.dim() == 3:
        target = target.repeat_interleave(logits.shape[1])
        logits = logits.flatten(0, 1)
    return nn.functional.cross_entropy(
        logits,
        target,
        weight=optimization.class_weights,
        label_smoothing=config.label_smoothing,
    )


def train_steps(
    model: nn.Module,
    optimization: Optimization,
    batches: Iterator[Batch],
    cursor: EpochCursor,
    config: LoopConfig,
    interrupts: Interrupts | None = None,
    bar: Any = None,
) -> bool:
    """Optimizer steps from ``cursor.next_step`` to the end of the epoch (the cursor follows).
    Returns False when ``interrupts`` asked to act before a step, True at the epoch's end."""
    device = cursor.loss_sum.device
    autocast = device.type == "cuda" and torch.cuda.is_bf16_supported()
    model.train()
    step = cursor.next_step
    for numeric, categorical, target in batches:
        if interrupts is not None and interrupts.poll(step):  # a flag read; no host sync
            cursor.next_step = step
            return False
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(numeric, categorical)
        loss = training_loss(logits.float(), target, optimization, config)
        optimization.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
        optimization.optimizer.step()
        optimization.scheduler.step()
        if optimization.average is not None:
            optimization.average.update()
        cursor.loss_sum += loss.detach() * target.shape[0]
        step += 1
        if bar is not None:
            bar.update()
    cursor.next_step = step
    return True


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Training:
    """One call of ``fit``: everything a checkpoint holds, and the epochs that change it."""

    def __init__(
        self,
        net: TabularMLP,
        train: TensorSplit,
        val: TensorSplit,
        config: LoopConfig,
        runtime: LoopRuntime,
        callbacks: LoopCallbacks,
    ) -> None:
        # An auto batch size or epochs count (0) is set here from the training rows.
        self.net, self.train, self.val = net, train, val
        task = "regression" if is_regression(net) else "classification"
        self.config = config.for_rows(train.rows).for_task(task)
        self.runtime, self.callbacks = runtime, callbacks
        self.group = runtime.group
        self.device = runtime.device or train.target.device
        self.rows = self.group.shard_rows(train.rows)  # this process's rows per epoch
        forward = net if runtime.forward is None else runtime.forward
        self.model = self.group.wrap(forward, self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.optimization = make_optimization(net, train, self.config, self.rows, self.device)
        self.outcome = LoopOutcome()
        self.best_state = copy.deepcopy(net.state_dict())
        # Per network of the kept net (one, or a pair): its least validation loss so far, and
        # (for a pair) its validation predictions then.
        self.network_best: list[float | None] = [None] * len(net.networks())
        self.best_predictions: list[torch.Tensor | None] = [None] * len(net.networks())
        self.cursor: EpochCursor | None = None
        self.epoch_shuffle_state = self.generator.get_state()
        if self.group.rank > 0:  # same initial weights (seeded before), other dropout masks
            torch.manual_seed(config.seed + self.group.rank)
        if runtime.resume is not None:
            self.restore(runtime.resume)

    def new_cursor(self) -> EpochCursor:
        """The next epoch's permutation (shared by every process; each takes its slice)."""
        self.epoch_shuffle_state = self.generator.get_state()
        order = torch.randperm(self.train.rows, device=self.device, generator=self.generator)
        if self.group.distributed:
            order = order[self.group.rank * self.rows : (self.group.rank + 1) * self.rows]
        return EpochCursor(order, 0, torch.zeros((), device=self.device))

    def batches(self, cursor: EpochCursor) -> Iterator[Batch]:
        """The rest of the epoch's batches, from ``cursor.next_step`` on."""
        size = self.config.batch_size
        if not self.runtime.stream_from_host:
            return device_batches(self.train, cursor.order, cursor.next_step, size)
        return streamed_batches(
            self.train,
            cursor.order,
            cursor.next_step,
            size,
            self.device,
            self.runtime.stream_chunk_steps,
        )

    def run_epoch(self, epoch: int) -> tuple[float, float]:
        """Train (the rest of) one epoch; returns the mean loss over every process's samples
        and the epoch's training seconds. Acts on interrupts between steps."""
        cursor = self.cursor = self.cursor or self.new_cursor()
        steps = math.ceil(self.rows / self.config.batch_size)
        show = self.runtime.progress and self.group.is_main
        bar = epoch_bar(show, epoch, self.config.epochs, steps, cursor.next_step)
        try:
            while True:
                started = time.perf_counter()
                args = (self.optimization, self.batches(cursor), cursor, self.config)
                if train_steps(self.model, *args, self.runtime.interrupts, bar):
                    loss = float(self.group.sum(cursor.loss_sum.clone()).item())  # the sync
                    cursor.seconds += time.perf_counter() - started
                    break
                _sync(self.device)
                cursor.seconds += time.perf_counter() - started
                self.act_on_interrupts(epoch)
        finally:
            if bar is not None:
                bar.close()
        self.cursor = None
        samples = self.rows * self.group.world_size
        self.outcome.train_samples += samples
        self.outcome.train_seconds += cursor.seconds
        return loss / samples, cursor.seconds

    def act_on_interrupts(self, epoch: int) -> None:
        """Checkpoint; then stop (``TrainingInterrupted``) when a stop was asked for."""
        interrupts = self.runtime.interrupts
        self.save()
        interrupts.checkpoint_due = False
        if interrupts.stop_requested:
            where = f"epoch {epoch}" + (
                f" step {self.cursor.next_step}" if self.cursor is not None else " end"
            )
            saved = "a checkpoint was written" if self.callbacks.checkpoint else "no checkpoint"
            raise TrainingInterrupted(f"training stopped on request at {where}; {saved}")

    def save(self) -> None:
        """Hand a snapshot to the checkpoint callback (rank 0 only); a diverged state is
        refused, so the last good checkpoint stays the latest."""
        if self.callbacks.checkpoint is None or not self.group.is_main:
            return
        loss_ok = self.cursor is None or bool(torch.isfinite(self.cursor.loss_sum))
        if not loss_ok or not all(bool(torch.isfinite(p).all()) for p in self.net.parameters()):
            raise DivergedError(
                "training loss or weights became NaN or infinite; lower --lr "
                "(no checkpoint written: the last good one stays the latest)"
            )
        self.callbacks.checkpoint(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """The training state as tensors and plain types (``torch.load(weights_only=True)``
        reads it): weights, their moving average, best weights, optimizer, schedule, RNG states,
        progress (with each network's best validation loss). There is no gradient scaler to
        save: bf16 autocast keeps fp32's exponent range and needs none."""
        cursor, average = self.cursor, self.optimization.average
        progress = {
            "format": STATE_FORMAT,
            "outcome": self.outcome.to_dict(),
            "in_epoch": cursor is not None,
            "average_steps": average.steps if average else 0,
            "network_best": self.network_best,
            "next_step": cursor.next_step if cursor else 0,
            "epoch_seconds": cursor.seconds if cursor else 0.0,
        }
        cuda = self.device.type == "cuda"
        return {
            "model": _cpu_copy(self.net.state_dict()),
            "best_model": _cpu_copy(self.best_state),
            "average": _cpu_copy(average.net.state_dict()) if average else {},
            "optimizer": self.optimization.optimizer.state_dict(),
            "scheduler": self.optimization.scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if cuda else [],
                # Mid-epoch: the state that drew this epoch's permutation, drawn again on resume.
                "shuffle": self.epoch_shuffle_state if cursor else self.generator.get_state(),
            },
            "loss_sum": cursor.loss_sum.detach().cpu() if cursor else torch.zeros(()),
            "progress": json.dumps(progress),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Go on from ``snapshot`` (what ``snapshot`` returned, as saved and loaded)."""
        progress = json.loads(snapshot["progress"])
        if progress.get("format") != STATE_FORMAT:
            raise UnsupportedStateError(
                f"checkpoint state format {progress.get('format')} is not supported (this "
                f"trainer resumes format {STATE_FORMAT}: the weights' moving average, and a "
                "pair's periodic network with one-hot categorical columns); start the run "
                "again without its checkpoints"
            )
        self.net.load_state_dict(snapshot["model"])
        if self.optimization.average is not None:
            self.optimization.average.net.load_state_dict(snapshot["average"])
            self.optimization.average.steps = progress["average_steps"]
        self.best_state = {k: v.to(self.device) for k, v in snapshot["best_model"].items()}
        self.optimization.optimizer.load_state_dict(snapshot["optimizer"])
        self.optimization.scheduler.load_state_dict(snapshot["scheduler"])
        self.outcome = LoopOutcome.from_dict(progress["outcome"])
        self.network_best = progress["network_best"]
        if len(self.network_best) > 1 and self.outcome.best_epoch > 0:
            # A pair's best predictions, again from its best weights (the same numbers).
            best = copy.deepcopy(self.kept_net)
            best.load_state_dict(self.best_state)
            self.best_predictions = list(network_predictions(best, self.val))
        rng = snapshot["rng"]
        if self.group.is_main:
            torch.set_rng_state(rng["torch"])
            if self.device.type == "cuda" and rng["cuda"]:
                torch.cuda.set_rng_state_all(rng["cuda"])
        self.generator.set_state(rng["shuffle"])
        if progress["in_epoch"]:
            self.cursor = self.new_cursor()
            self.cursor.next_step = progress["next_step"]
            self.cursor.loss_sum = snapshot["loss_sum"].to(self.device)
            self.cursor.seconds = progress["epoch_seconds"]

    def fit(self) -> LoopOutcome:
        """The remaining epochs; on return the net holds the kept weights (the best epoch's;
        each network of a pair at its own)."""
        started, first = time.perf_counter(), self.outcome.epochs_done + 1
        for epoch in range(first, self.config.epochs + 1):
            if self.outcome.stopped_early:
                break
            train_loss, seconds = self.run_epoch(epoch)
            if not math.isfinite(train_loss):
                raise DivergedError(f"training loss is {train_loss} at epoch {epoch}; lower --lr")
            samples = self.rows * self.group.world_size
            predicted = network_predictions(self.kept_net, self.val)
            val = self.metrics_of(torch.stack(predicted).mean(0))
            record = EpochRecord(epoch, train_loss, val, samples / seconds)
            # At most this long: early stopping can end the run sooner.
            eta = (
                (time.perf_counter() - started) / (epoch - first + 1) * (self.config.epochs - epoch)
            )
            self.finish_epoch(record, predicted, eta)
        self.net.load_state_dict(self.best_state)
        return self.outcome

    @property
    def kept_net(self) -> TabularMLP:
        """The weights validated and kept: the moving average when there is one."""
        average = self.optimization.average
        return self.net if average is None else cast(TabularMLP, average.net)

    def metrics_of(self, predicted: torch.Tensor) -> ValidationMetrics:
        """The validation metrics of predictions on the validation split."""
        regression = is_regression(self.net)
        loss, scaling = self.config.loss, self.runtime.target_scaling
        return metrics_of(predicted, self.val, regression, loss, scaling)

    def keep_best(self, record: EpochRecord, predicted: list[torch.Tensor]) -> None:
        """Keep the weights of each network (one, or each of a pair) whose own validation loss
        is its least so far; ``best_epoch`` becomes this epoch if any was. ``predicted``: each
        network's validation predictions this epoch. A pair's networks are each kept at their
        own best epoch, as if trained apart, and the combination's metrics (``kept_val``) come
        from their predictions then."""
        networks = self.kept_net.networks()
        pair = len(networks) > 1
        improved = False
        for i, (prefix, network) in enumerate(networks):
            loss = self.metrics_of(predicted[i]).loss if pair else record.val.loss
            best = self.network_best[i]
            if best is None or loss < best:
                self.network_best[i], improved = loss, True
                state = copy.deepcopy(network.state_dict())
                self.best_state.update({prefix + k: v for k, v in state.items()})
                self.best_predictions[i] = predicted[i] if pair else None
        if not improved:
            return
        self.outcome.best_epoch = record.epoch
        if pair:
            kept = [p for p in self.best_predictions if p is not None]
            self.outcome.kept_val = self.metrics_of(torch.stack(kept).mean(0))

    def finish_epoch(self, record: EpochRecord, predicted: list[torch.Tensor], eta: float) -> None:
        """Book the epoch: best weights, log line, early stop, callback, checkpoint."""
        outcome = self.outcome
        outcome.history.append(record)
        self.keep_best(record, predicted)
        log.info(
            "epoch %d/%d train_loss=%.4f %s samples/s=%.0f eta=%.0fs",
            record.epoch,
            self.config.epochs,
            record.train_loss,
            metrics_text(record.val),
            record.samples_per_sec,
            eta,
        )
        if record.epoch - outcome.best_epoch >= self.config.patience:
            log.info("early stop: no val_loss improvement for %d epochs", self.config.patience)
            outcome.stopped_early = True
        if self.callbacks.on_epoch is not None:
            self.callbacks.on_epoch(record)
        every = self.runtime.checkpoint_every_epochs
        pending = self.runtime.interrupts.settle()  # every process calls it: they agree
        if pending or (every > 0 and record.epoch % every == 0):
            self.act_on_interrupts(record.epoch)


def metrics_text(val: ValidationMetrics) -> str:
    """The validation metrics of an epoch's log line, named as MLflow records them."""
    if isinstance(val, RegressionMetrics):
        return (
            f"val_loss={val.loss:.4f} val_rmse={val.rmse:.4g} val_mae={val.mae:.4g} "
            f"val_r2={val.r2:.4f}"
        )
    return f"val_loss={val.loss:.4f} val_accuracy={val.accuracy:.4f}"


def fit(
    net: TabularMLP,
    train: TensorSplit,
    val: TensorSplit,
    config: LoopConfig,
    runtime: LoopRuntime | None = None,
    callbacks: LoopCallbacks | None = None,
) -> LoopOutcome:
    """Train ``net`` in place on ``train``, early-stopped on ``val``; returns the epochs' record,
    and ``net`` holds the weights of the best validation epoch. Raises ``DivergedError`` on a
    NaN/inf loss, ``TrainingInterrupted`` after a requested stop (with a snapshot handed to
    ``callbacks.checkpoint`` first)."""
    training = Training(
        net, train, val, config, runtime or LoopRuntime(), callbacks or LoopCallbacks()
    )
    return training.fit()
