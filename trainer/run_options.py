"""How a training run is carried out: device, determinism, compilation, data placement,
checkpoints and system metrics (the trainer's run and operation flags). It imports no torch, so
that the trainer's parser (and ``--help``) is built without loading it; ``trainer.job`` runs
with them."""

from __future__ import annotations

import math
import re
from argparse import ArgumentTypeError
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

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


# What MLflow accepts as a tag key: letters, digits, underscores, dashes, periods, spaces,
# slashes and colons, at most 250 characters, not a path that climbs ("..") or starts at "/".
TAG_KEY = re.compile(r"[\w\-. /:]{1,250}")
MAX_TAG_VALUE = 8000  # characters, MLflow's limit
MAX_RUN_NAME = 250  # characters
# Tags the trainer sets itself (``trainer.mlflow_run.training_tags``): a --tag may not replace
# them, and none may use MLflow's own ``mlflow.`` namespace.
TRAINER_TAGS = (
    "data_fingerprint",
    "code_version",
    "torch",
    "python",
    "world_size",
    "checkpoint_dir",
    "image",
    "data_placement",
    "task",
)


def tag_pair(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (the ``--tag`` flag) as a pair, the key checked against MLflow's rules."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if not TAG_KEY.fullmatch(key) or ".." in key or key.startswith("/"):
        raise ArgumentTypeError(
            f"tag key {key!r}: use 1 to 250 letters, digits, '_', '-', '.', ' ', '/' or ':'"
        )
    if len(value) > MAX_TAG_VALUE:
        raise ArgumentTypeError(f"tag {key!r}: the value is over {MAX_TAG_VALUE} characters")
    return key, value


@dataclass(frozen=True)
class Tracking:
    """How the run appears in MLflow beyond its experiment (the ``--run-name`` and ``--tag``
    flags): its name (None: MLflow picks one; the trainer's command line names a run by its
    settings, ``settings_name``) and tags of the caller's, e.g. the data date and the DAG run
    that started it."""

    run_name: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        """Raise ``SettingError`` for an empty or overlong name, a tag given twice, a tag the
        trainer sets itself, or one in MLflow's namespace."""
        if self.run_name is not None:
            name = self.run_name
            check_setting("run_name", name, bool(name.strip()), "must not be empty")
            valid = len(name) <= MAX_RUN_NAME
            check_setting("run_name", name, valid, f"must be at most {MAX_RUN_NAME} characters")
        keys = [key for key, _ in self.tags]
        for key in keys:
            if keys.count(key) > 1:
                raise SettingError("tag", f"{key!r} is given more than once")
            if key in TRAINER_TAGS or key.startswith("mlflow."):
                raise SettingError("tag", f"{key!r} is set by the trainer or MLflow itself")


def settings_name(*configs: Any) -> str:
    """A run's default name: the fields of the config dataclasses ``configs`` that differ from
    their defaults (``lr=0.003 numeric_embedding=ple``), or ``defaults`` when none does."""
    changed = [
        f"{f.name}={value}"
        for config in configs
        for f in fields(config)
        if (value := getattr(config, f.name)) != getattr(type(config)(), f.name)
    ]
    return " ".join(changed)[:MAX_RUN_NAME].strip() or "defaults"
