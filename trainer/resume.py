"""Where a training run keeps its checkpoints, what it resumes from, and the checks that make a
resume safe.

A run is identified by its experiment name, data path, data fingerprint and resolved
hyperparameters. Without ``--checkpoint-dir`` the checkpoints go to
``$PIPELINE_HOME/checkpoints/<hash of that identity>``, so a retried pod (same flags, same data)
finds them and resumes, and a run with other flags or data starts afresh. A checkpoint dir that
holds another run's checkpoint is refused (a clear error naming the dir and what differs).
After a successful run its checkpoints are deleted: the model is in MLflow, and a later run with
the same flags is a new run."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.step import StepError
from common.tracking import pipeline_home
from trainer.checkpoint import CheckpointStore, identity_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointOptions:
    dir: str | None  # None: the run-scoped default under $PIPELINE_HOME/checkpoints
    every_epochs: int = 1  # 0: not by epochs
    every_minutes: float = 0.0  # 0: not by time
    keep: int = 2


def default_dir(identity: dict[str, Any]) -> str:
    return str(pipeline_home() / "checkpoints" / identity_hash(identity))


@dataclass(frozen=True)
class ResumePoint:
    """What a run goes on from: the loop's snapshot and the MLflow run to continue."""

    snapshot: dict[str, Any]
    mlflow_run_id: str


class RunCheckpoints:
    """The checkpoints of one training run (``identity``: JSON-able description of it)."""

    def __init__(self, options: CheckpointOptions, identity: dict[str, Any]) -> None:
        self.identity = identity
        self.key = identity_hash(identity)
        self.store = CheckpointStore(options.dir or default_dir(identity), options.keep)

    @property
    def uri(self) -> str:
        return self.store.uri

    @property
    def shown(self) -> str:
        """The folder's URI as messages show it (credentials masked)."""
        return self.store.shown

    def resume_point(self) -> ResumePoint | None:
        """The latest checkpoint of this run, or None; refuses another run's checkpoint."""
        pointer = self.store.pointer()
        if pointer is None:
            return None
        state = self.store.load(pointer)
        theirs, mlflow_run_id = self._meta(state, pointer["file"])
        if pointer["identity"] != self.key or theirs != self.identity:
            raise StepError(self._mismatch(theirs))
        log.info("resuming from %s/%s", self.shown, pointer["file"])
        return ResumePoint(state, mlflow_run_id)

    def _meta(self, state: dict[str, Any], name: str) -> tuple[dict[str, Any], str]:
        """The identity and MLflow run id the trainer stored in checkpoint ``name`` (removed
        from ``state``); a StepError when the checkpoint holds none."""
        meta: Any = None
        with contextlib.suppress(KeyError, TypeError, ValueError):
            meta = json.loads(state.pop("meta"))
        if not (
            isinstance(meta, dict)
            and isinstance(meta.get("identity"), dict)
            and isinstance(meta.get("mlflow_run_id"), str)
        ):
            raise StepError(f"{self.shown}/{name} holds no run description of the trainer (meta)")
        return meta["identity"], meta["mlflow_run_id"]

    def _mismatch(self, theirs: dict[str, Any]) -> str:
        ours = self.identity
        config_a, config_b = theirs.get("config", {}), ours.get("config", {})
        differ = [k for k in sorted({*theirs, *ours} - {"config"}) if theirs.get(k) != ours.get(k)]
        differ += [k for k in sorted({*config_a, *config_b}) if config_a.get(k) != config_b.get(k)]
        return (
            f"--checkpoint-dir {self.shown} holds a checkpoint of a different run (differs in: "
            f"{', '.join(differ) or 'format'}); resume with the same flags and data, or pass "
            "another --checkpoint-dir"
        )

    def saver(self, mlflow_run_id: str) -> Callable[[dict[str, Any]], None]:
        """The loop's checkpoint hook: adds what the trainer needs on resume, then commits."""
        meta = json.dumps({"identity": self.identity, "mlflow_run_id": mlflow_run_id})

        def save(snapshot: dict[str, Any]) -> None:
            progress = json.loads(snapshot["progress"])
            outcome = progress["outcome"]
            epoch = len(outcome["history"]) + int(progress["in_epoch"])
            tag = f"{epoch:05d}-{progress['next_step']:07d}"
            name = self.store.save({**snapshot, "meta": meta}, tag, self.key)
            # Epoch checkpoints are routine; one taken mid-epoch (timer, SIGTERM) is news.
            level = logging.INFO if progress["in_epoch"] else logging.DEBUG
            log.log(level, "checkpoint %s/%s written", self.shown, name)

        return save

    def clear(self) -> None:
        """Delete the run's checkpoints once its model is logged. Best effort: a folder that
        cannot be cleaned only costs storage, and the finished run stays a success."""
        try:
            self.store.clear()
        except (OSError, StepError) as exc:  # a refused access is a StepError here
            log.warning("could not delete the checkpoints in %s: %s", self.shown, exc)
