"""How a training run is carried out: device, determinism, compilation, data placement,
checkpoints and system metrics (the trainer's run and operation flags). It imports no torch, so
that the trainer's parser (and ``--help``) is built without loading it; ``trainer.job`` runs
with them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tabular_model.model_config import SettingError, check_setting

if TYPE_CHECKING:
    from trainer.resume import CheckpointOptions

DEVICES = ("auto", "cpu", "cuda")


DATA_PLACEMENTS = ("auto", "device", "stream")


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out (the run and operation flags of the same names; their defaults
    are these). ``deterministic`` and ``compile`` change how the numbers are computed, so they
    are recorded with the hyperparameters; the others are not."""

    device: str = "auto"  # one of DEVICES; auto: CUDA when present
    deterministic: bool = False
    compile: bool = False
    data_placement: str = "auto"  # one of DATA_PLACEMENTS
    system_metrics_interval: float = 10.0  # seconds; 0: off
    checkpoint_dir: str | None = None  # None: the run-scoped default under $PIPELINE_HOME
    checkpoint_every_epochs: int = 1  # 0: off
    checkpoint_every_minutes: float = 10.0  # 0: off

    def __post_init__(self) -> None:
        """Raise ``SettingError`` naming the first field out of its range."""
        for name, choices in (("device", DEVICES), ("data_placement", DATA_PLACEMENTS)):
            value = getattr(self, name)
            check_setting(name, value, value in choices, f"must be one of {choices}")
        for name in (
            "checkpoint_every_epochs",
            "checkpoint_every_minutes",
            "system_metrics_interval",
        ):
            value = getattr(self, name)
            check_setting(name, value, 0 <= value < math.inf, "must not be negative")
        if self.checkpoint_dir is not None and not self.checkpoint_dir.strip():
            raise SettingError("checkpoint_dir", "is empty")

    @property
    def checkpoint(self) -> CheckpointOptions:
        """Where and how often the run checkpoints (``keep``: the store's default)."""
        from trainer.resume import CheckpointOptions  # imports torch

        return CheckpointOptions(
            self.checkpoint_dir, self.checkpoint_every_epochs, self.checkpoint_every_minutes
        )
