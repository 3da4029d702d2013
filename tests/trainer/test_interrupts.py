"""SIGTERM and the checkpoint timer only set flags the loop reads between steps; the progress
bar shows on a terminal only."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.test_loop import CONFIG, new_net, separable
from trainer.distributed import ProcessGroup, SharedInterrupts
from trainer.interrupts import Interrupts, checkpoint_timer, stop_on_sigterm
from trainer.loop import LoopRuntime, fit


def test_sigterm_sets_the_stop_flag_and_the_old_handler_comes_back() -> None:
    interrupts = Interrupts()
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_sigterm(interrupts):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the main thread: the process lives
        deadline = time.monotonic() + 30
        while not interrupts.stop_requested and time.monotonic() < deadline:
            time.sleep(0.01)
    assert interrupts.stop_requested
    assert interrupts.poll(0) and interrupts.settle()
    assert signal.getsignal(signal.SIGTERM) is before


def test_handlers_are_left_alone_outside_the_main_thread() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def body() -> None:
        with stop_on_sigterm(Interrupts()):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]


def test_the_timer_asks_for_checkpoints_until_it_stops() -> None:
    interrupts = Interrupts()
    with checkpoint_timer(interrupts, minutes=0.1 / 60):
        deadline = time.monotonic() + 30
        while not interrupts.checkpoint_due and time.monotonic() < deadline:
            time.sleep(0.01)
    assert interrupts.checkpoint_due and not interrupts.stop_requested
    interrupts.checkpoint_due = False
    time.sleep(0.3)
    assert not interrupts.checkpoint_due, "the timer thread ended with the block"


def test_no_timer_when_minutes_is_zero() -> None:
    threads = threading.active_count()
    with checkpoint_timer(Interrupts(), minutes=0):
        assert threading.active_count() == threads


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_over_the_steps_when_asked(
    progress: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    config = dataclasses.replace(CONFIG, epochs=2)
    fit(new_net(), separable(400, 1), separable(100, 2), config, LoopRuntime(progress=progress))
    out = capsys.readouterr().out
    assert ("epoch 1/2" in out and "epoch 2/2" in out and "/4 [" in out) == progress, out


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer import progress

    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert not progress.on_terminal()
    assert progress.epoch_bar(False, 1, 2, 10, 0) is None


@pytest.fixture
def gloo_alone(tmp_path: Path) -> Iterator[None]:
    """A one-process gloo group, so SharedInterrupts' all-reduce runs for real."""
    store = tmp_path / "gloo-store"
    torch.distributed.init_process_group("gloo", init_method=store.as_uri(), rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()


@pytest.mark.usefixtures("gloo_alone")
@pytest.mark.parametrize("request_name", ["request_stop", "request_checkpoint"])
def test_a_request_landing_while_the_flags_are_combined_is_kept(
    request_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupts = SharedInterrupts(ProcessGroup(world_size=2), torch.device("cpu"))
    real = torch.distributed.all_reduce
    landed: list[bool] = []

    def reduce_then_signal(tensor: torch.Tensor, **kwargs: Any) -> Any:
        done = real(tensor, **kwargs)
        if not landed:  # SIGTERM (or the timer) arrives during the first reduce
            landed.append(True)
            getattr(interrupts, request_name)()
        return done

    monkeypatch.setattr(torch.distributed, "all_reduce", reduce_then_signal)
    assert not interrupts.settle()  # decided before the request: nothing yet
    assert interrupts.settle()  # the request was kept for the next decision
    stop = request_name == "request_stop"
    assert (interrupts.stop_requested, interrupts.checkpoint_due) == (stop, not stop)
    assert interrupts.settle() is stop  # a stop stays; a checkpoint was taken once
