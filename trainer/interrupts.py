"""Requests that reach the training loop from outside it: SIGTERM (Kubernetes preemption or
eviction) asks for a checkpoint and a stop, a timer asks for a periodic checkpoint.

The loop asks ``poll()`` once per step: a Python attribute read, no host synchronisation. Signal
handlers and timer threads only set flags; the loop acts on them between two steps, so a
checkpoint always holds the state after a whole optimizer step."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from common.step import StepError

log = logging.getLogger(__name__)

# Exit status of a process ended by SIGTERM (128 + 15), what Kubernetes and shells expect.
SIGTERM_EXIT_CODE = 143


class Interrupts:
    """Flags the loop polls between steps. ``stop_requested``: checkpoint and stop;
    ``checkpoint_due``: checkpoint and go on."""

    def __init__(self) -> None:
        self.stop_requested = False
        self.checkpoint_due = False

    def poll(self, step: int) -> bool:
        """True when the loop must act before optimizer step ``step`` of the epoch."""
        return self.stop_requested or self.checkpoint_due

    def settle(self) -> bool:
        """At an epoch boundary: True when something is pending (every process agrees)."""
        return self.stop_requested or self.checkpoint_due

    def request_stop(self) -> None:
        self.stop_requested = True

    def request_checkpoint(self) -> None:
        self.checkpoint_due = True


@contextlib.contextmanager
def stop_on_sigterm(interrupts: Interrupts) -> Iterator[None]:
    """While inside, SIGTERM sets ``interrupts.stop_requested`` instead of killing the process
    (the previous handler comes back on exit). Only the main thread can install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("SIGTERM: stopping after the current step to write a checkpoint")
        interrupts.request_stop()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def checkpoint_timer(interrupts: Interrupts, minutes: float) -> Iterator[None]:
    """While inside, ask for a checkpoint every ``minutes`` (0: never)."""
    if minutes <= 0:
        yield
        return
    done = threading.Event()

    def tick() -> None:
        while not done.wait(minutes * 60):
            interrupts.request_checkpoint()

    thread = threading.Thread(target=tick, name="checkpoint-timer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class Preempted(StepError):
    """Training stopped on SIGTERM after a checkpoint: the step ends like a terminated
    process (exit 143), with no result."""

    exit_code = SIGTERM_EXIT_CODE
