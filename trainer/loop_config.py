"""The optimisation settings of the training loop (the trainer's optimisation flags and
``--seed``). It imports no torch, so that the trainer's parser (and ``--help``) is built without
loading it; ``trainer.loop`` trains with them."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from tabular_model.model_config import check_setting

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine")
CLASS_WEIGHTS = ("none", "balanced")
# auto: the task's own loss (cross-entropy for classification, MSE for regression); mse and
# huber are regression losses on the standardised target.
LOSSES = ("auto", "mse", "huber")


DEFAULT_SMOOTHING = 0.1


@dataclass(frozen=True)
class LoopConfig:
    """The optimisation settings (the trainer's flags of the same names; their defaults are
    these)."""

    lr: float = 1e-3
    batch_size: int = 0  # 0: auto, from the training rows (see ``for_rows``)
    optimizer: str = "adamw"  # one of OPTIMIZERS
    epochs: int = 0  # at most, early stopping can end sooner; 0: auto (see ``for_rows``)
    weight_decay: float = 1e-5
    patience: int = 16  # epochs without a val_loss improvement before stopping
    seed: int = 0  # of the initialisation and the shuffling
    lr_schedule: str = "cosine"  # after the warmup; one of LR_SCHEDULES
    warmup_epochs: float = 1.0  # linear learning-rate warmup
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    class_weights: str = "none"  # one of CLASS_WEIGHTS
    # Share of each target spread evenly over the classes: 0.1 gained on the multiclass sets of
    # the model quality panel (docs/BENCHMARKS.md).
    label_smoothing: float = DEFAULT_SMOOTHING
    loss: str = "auto"  # one of LOSSES; see ``for_task``
    # Weights validated, kept and served: an exponential moving average of the trained ones,
    # updated after every optimizer step with this decay (0: the trained weights themselves).
    ema_decay: float = 0.99

    # The largest batch and number of epochs: generous for an 80 GB GPU, but a typo (an extra
    # zero or two) is refused instead of filling the machine's memory or running for weeks.
    LIMITS: ClassVar[dict[str, int]] = {"batch_size": 1_048_576, "epochs": 10_000}

    def __post_init__(self) -> None:
        """Raise ``SettingError`` naming the first field out of its range (NaN and infinity
        are out of every float field's range)."""
        for name in ("lr", "patience"):
            value = getattr(self, name)
            check_setting(name, value, value > 0, "must be positive")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            check_setting(name, value, value >= 0, "must not be negative (0: auto)")
        for name in ("weight_decay", "warmup_epochs", "grad_clip"):
            value = getattr(self, name)
            check_setting(name, value, value >= 0, "must not be negative")
        for name in ("label_smoothing", "ema_decay"):
            value = getattr(self, name)
            check_setting(name, value, 0 <= value < 1, "must be in [0, 1)")
        for name in ("lr", "weight_decay", "warmup_epochs", "grad_clip"):
            value = getattr(self, name)
            check_setting(name, value, math.isfinite(value), "must be finite")
        for name, limit in self.LIMITS.items():
            value = getattr(self, name)
            check_setting(name, value, value <= limit, f"must be at most {limit}")
        for name, choices in (
            ("optimizer", OPTIMIZERS),
            ("lr_schedule", LR_SCHEDULES),
            ("class_weights", CLASS_WEIGHTS),
            ("loss", LOSSES),
        ):
            value = getattr(self, name)
            check_setting(name, value, value in choices, f"must be one of {choices}")

    def for_task(self, task: str) -> LoopConfig:
        """This config for a dataset of ``task``: for regression an auto loss becomes MSE;
        a classification keeps auto (its cross-entropy). A setting that does not apply to the
        task is a ``SettingError`` naming it: a regression loss for classes, class weights or
        label smoothing for a numeric target. Their defaults pass: the class weights' changes
        nothing, and the default label smoothing becomes 0 for a regression."""
        if task != "regression":
            only = "applies to a regression target only (auto: the cross-entropy of classes)"
            check_setting("loss", self.loss, self.loss == "auto", only)
            return self
        only = "applies to a classification target only"
        check_setting("class_weights", self.class_weights, self.class_weights == "none", only)
        smoothing = self.label_smoothing
        check_setting("label_smoothing", smoothing, smoothing in (0, DEFAULT_SMOOTHING), only)
        loss = "mse" if self.loss == "auto" else self.loss
        return replace(self, loss=loss, label_smoothing=0.0)

    @property
    def resolved(self) -> bool:
        """Whether batch size and epochs are set (none of them is auto)."""
        return self.batch_size > 0 and self.epochs > 0

    def for_rows(self, rows: int) -> LoopConfig:
        """This config with an auto (0) batch size and epochs set for ``rows`` training rows
        (over every process); values set explicitly are kept. See ``auto_batch_size`` and
        ``auto_epochs``."""
        batch_size = self.batch_size or auto_batch_size(rows)
        epochs = self.epochs or auto_epochs(rows, batch_size)
        return replace(self, batch_size=batch_size, epochs=epochs)


# The auto optimisation budget. A fixed batch of 1024 and 20 epochs gives a dataset of 2,000
# rows 40 optimiser steps, far too few: small data needs small batches and many epochs, large
# data gets large batches (fast on a GPU) and fewer epochs. docs/BENCHMARKS.md, "Model quality
# panel", measures the rule.
AUTO_ROWS_PER_STEP = 32  # batch ≈ rows / 32: 32-63 steps per epoch between floor and cap
AUTO_BATCH_RANGE = (128, 1024)
AUTO_STEPS = 20_000  # optimiser steps the epochs aim at, within AUTO_EPOCH_RANGE
AUTO_EPOCH_RANGE = (20, 100)


def auto_batch_size(rows: int) -> int:
    """The largest power of two at most ``rows / AUTO_ROWS_PER_STEP``, within
    ``AUTO_BATCH_RANGE``."""
    low, high = AUTO_BATCH_RANGE
    target = max(1, rows // AUTO_ROWS_PER_STEP)
    return min(high, max(low, 1 << (target.bit_length() - 1)))


def auto_epochs(rows: int, batch_size: int) -> int:
    """Epochs giving about ``AUTO_STEPS`` optimiser steps of ``batch_size``, within
    ``AUTO_EPOCH_RANGE`` (early stopping can end the run sooner)."""
    low, high = AUTO_EPOCH_RANGE
    steps_per_epoch = max(1, math.ceil(rows / batch_size))
    return min(high, max(low, math.ceil(AUTO_STEPS / steps_per_epoch)))
