"""Checkpoints of the training loop: an interrupted and resumed run ends exactly like an
uninterrupted one (bitwise on the CPU), at an epoch boundary and mid-epoch; a diverged state
never becomes the latest checkpoint; streamed data trains exactly like device-resident data."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tabular_model.network import NetworkConfig, TabularMLP
from tests.trainer.test_loop import CONFIG, new_net, separable
from trainer.checkpoint import CheckpointStore
from trainer.interrupts import Interrupts
from trainer.loop import (
    DivergedError,
    LoopCallbacks,
    LoopConfig,
    LoopOutcome,
    LoopRuntime,
    TensorSplit,
    TrainingInterrupted,
    UnsupportedStateError,
    fit,
    validation_metrics,
)

# Dropout on, cosine schedule with warmup, clipping: every piece of state a resume must restore.
RESUME_CONFIG = dataclasses.replace(
    CONFIG, epochs=5, batch_size=64, lr_schedule="cosine", warmup_epochs=1.0, grad_clip=1.0
)
STEPS_PER_EPOCH = 7  # ceil(400 / 64)


def dropout_net() -> TabularMLP:
    torch.manual_seed(3)
    return TabularMLP(NetworkConfig(2, (4,), 2, width=32, depth=2, dropout=0.2))


def dropout_pair() -> TabularMLP:
    """The trainer's default kind of network: a PLE and a periodic network side by side (the
    periodic one with its categorical column one-hot)."""
    torch.manual_seed(3)
    edges = ((-1.0, 0.0, 1.0), (-1.0, 0.0, 1.0))
    return TabularMLP(
        NetworkConfig(2, (4,), 2, width=32, depth=2, dropout=0.2,
                      numeric_embedding="ple+periodic", ple_edges=edges, numeric_linear=True,
                      one_hot_max_codes=8)
    )  # fmt: skip


class StopAtStep(Interrupts):
    """Asks for a stop (or, with ``checkpoint_only``, a checkpoint) during the ``at``-th step
    the loop runs (counted over the whole run, from 1): a deterministic stand-in for a signal
    arriving while a step computes."""

    def __init__(self, at: int, checkpoint_only: bool = False) -> None:
        super().__init__()
        self.at, self.polls, self.checkpoint_only = at, 0, checkpoint_only

    def poll(self, step: int) -> bool:
        self.polls += 1
        pending = super().poll(step)
        if self.polls == self.at:
            if self.checkpoint_only:
                self.request_checkpoint()
            else:
                self.request_stop()
        return pending


Checkpoint = Callable[[dict[str, Any]], None]


def run(
    config: LoopConfig,
    store: CheckpointStore | None = None,
    checkpoint: Checkpoint | None = None,
    make_net: Callable[[], TabularMLP] = dropout_net,
    **runtime: Any,
) -> tuple[dict[str, torch.Tensor], LoopOutcome]:
    """A fresh training run on the toy data, resumed from ``store``'s latest checkpoint (unless
    ``runtime`` names another ``resume``) and checkpointing into it (unless given another
    ``checkpoint`` callback); ``runtime``: the ``LoopRuntime`` fields."""
    train, val = separable(400, seed=1), separable(200, seed=2)
    net = make_net()
    if store is not None:
        pointer = store.pointer()
        runtime.setdefault("resume", store.load(pointer) if pointer else None)
        checkpoint = checkpoint or saver(store)
    callbacks = LoopCallbacks(checkpoint=checkpoint)
    outcome = fit(net, train, val, config, LoopRuntime(**runtime), callbacks)
    return net.state_dict(), outcome


def saver(store: CheckpointStore) -> Checkpoint:
    """A checkpoint callback that commits every snapshot to ``store``."""

    def save(snapshot: dict[str, Any]) -> None:
        store.save(snapshot, "t", "id")

    return save


def assert_same(a: tuple[dict[str, torch.Tensor], LoopOutcome], b: Any) -> None:
    (state_a, outcome_a), (state_b, outcome_b) = a, b
    assert [(r.epoch, r.train_loss, r.val) for r in outcome_a.history] == [
        (r.epoch, r.train_loss, r.val) for r in outcome_b.history
    ]
    assert outcome_a.best_epoch == outcome_b.best_epoch
    assert outcome_a.kept_val == outcome_b.kept_val
    assert outcome_a.train_samples == outcome_b.train_samples
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


@pytest.fixture(scope="module")
def uninterrupted() -> tuple[dict[str, torch.Tensor], LoopOutcome]:
    return run(RESUME_CONFIG)


def test_resume_from_an_epoch_boundary_ends_like_an_uninterrupted_run(
    tmp_path: Path, uninterrupted: Any
) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    with pytest.raises(TrainingInterrupted, match="epoch 2 end"):
        # The stop arrives during epoch 2's last step: it is acted on at the epoch's end.
        run(RESUME_CONFIG, store, interrupts=StopAtStep(2 * STEPS_PER_EPOCH))
    assert store.pointer() is not None
    assert_same(run(RESUME_CONFIG, store), uninterrupted)


@pytest.mark.parametrize("at", [1, 4, STEPS_PER_EPOCH + 3, 3 * STEPS_PER_EPOCH + 6])
def test_resume_mid_epoch_continues_the_same_batch_order(
    tmp_path: Path, uninterrupted: Any, at: int
) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    with pytest.raises(TrainingInterrupted, match="step"):
        run(RESUME_CONFIG, store, interrupts=StopAtStep(at))
    resumed = run(RESUME_CONFIG, store)
    assert_same(resumed, uninterrupted)
    assert resumed[1].samples_per_sec > 0


def test_twice_interrupted_run_still_ends_the_same(tmp_path: Path, uninterrupted: Any) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    for at in (5, 9):
        with pytest.raises(TrainingInterrupted):
            run(RESUME_CONFIG, store, interrupts=StopAtStep(at))
    assert_same(run(RESUME_CONFIG, store), uninterrupted)


def test_a_timed_checkpoint_does_not_change_the_run(tmp_path: Path, uninterrupted: Any) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    interrupts = StopAtStep(10, checkpoint_only=True)
    assert_same(run(RESUME_CONFIG, store, interrupts=interrupts), uninterrupted)
    assert not interrupts.checkpoint_due  # acted on, then cleared
    assert len(store.pointer()["history"]) == 1  # type: ignore[index]


def test_resuming_a_finished_run_trains_no_more(tmp_path: Path, uninterrupted: Any) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    first = run(RESUME_CONFIG, store, checkpoint_every_epochs=1)
    assert_same(first, uninterrupted)
    polls = StopAtStep(10**9)
    assert_same(run(RESUME_CONFIG, store, interrupts=polls), uninterrupted)
    assert polls.polls == 0


def test_checkpoints_every_n_epochs_keep_the_last_two(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    saved: list[str] = []
    run(
        RESUME_CONFIG,
        store,
        checkpoint=lambda state: saved.append(store.save(state, "e", "id")),
        checkpoint_every_epochs=2,
    )
    assert len(saved) == 2  # after epochs 2 and 4 of 5
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == sorted([*saved, "latest.json"])


def test_a_diverged_state_is_never_checkpointed(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    good = dataclasses.replace(RESUME_CONFIG, lr=0.05, optimizer="sgd", epochs=2)
    run(good, store, checkpoint_every_epochs=1)
    pointer = store.pointer()
    diverging = dataclasses.replace(
        good, lr=1e6, epochs=4, grad_clip=0.0, warmup_epochs=0.0, lr_schedule="constant"
    )
    with pytest.raises(DivergedError, match="lower --lr"):
        run(diverging, store, resume=None, checkpoint_every_epochs=1)
    assert store.pointer() == pointer
    # A checkpoint asked for mid-epoch after the loss went NaN is refused too.
    with pytest.raises(DivergedError, match="no checkpoint written"):
        run(diverging, store, resume=None, interrupts=StopAtStep(5, checkpoint_only=True))
    assert store.pointer() == pointer


def test_streamed_data_trains_exactly_like_device_resident_data(uninterrupted: Any) -> None:
    for chunk_steps in (1, 3):
        streamed = run(RESUME_CONFIG, stream_from_host=True, stream_chunk_steps=chunk_steps)
        assert_same(streamed, uninterrupted)


def test_stream_and_resume_together(tmp_path: Path, uninterrupted: Any) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    with pytest.raises(TrainingInterrupted):
        run(
            RESUME_CONFIG,
            store,
            interrupts=StopAtStep(12),
            stream_from_host=True,
            stream_chunk_steps=3,
        )
    assert_same(
        run(RESUME_CONFIG, store, stream_from_host=True, stream_chunk_steps=3), uninterrupted
    )


def test_stream_evaluates_host_data_in_chunks() -> None:
    net, val = new_net(), separable(300, seed=2)
    whole = validation_metrics(net, val)
    assert validation_metrics(net, val, chunk_rows=64) == whole
    assert isinstance(val, TensorSplit)


def to_cuda(split: TensorSplit) -> TensorSplit:
    return TensorSplit(*(t.cuda() for t in (split.numeric, split.categorical, split.target)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_streamed_and_resumed_runs_match_the_device_resident_run(tmp_path: Path) -> None:
    train, val = separable(400, seed=1), separable(200, seed=2)
    cuda = torch.device("cuda")

    def cuda_run(
        data: TensorSplit, store: CheckpointStore | None = None, **runtime: Any
    ) -> LoopOutcome:
        net = dropout_net().cuda()
        callbacks = LoopCallbacks(checkpoint=saver(store) if store else None)
        on_cuda = LoopRuntime(device=cuda, **runtime)
        return fit(net, data, to_cuda(val), RESUME_CONFIG, on_cuda, callbacks)

    resident = cuda_run(to_cuda(train))
    streamed = cuda_run(train, stream_from_host=True, stream_chunk_steps=3)
    store = CheckpointStore(str(tmp_path / "ckpt"))
    with pytest.raises(TrainingInterrupted):
        cuda_run(to_cuda(train), store, interrupts=StopAtStep(9))
    resumed = cuda_run(to_cuda(train), store, resume=store.load(store.pointer()))  # type: ignore[arg-type]
    for other in (streamed, resumed):
        assert [r.train_loss for r in other.history] == pytest.approx(
            [r.train_loss for r in resident.history], rel=1e-4
        )


def test_a_pair_resumed_mid_epoch_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    # The moving average, each network's best loss and the kept combination's metrics resume.
    store = CheckpointStore(str(tmp_path / "ckpt"))
    with pytest.raises(TrainingInterrupted, match="epoch 4 step 3"):
        run(RESUME_CONFIG, store, make_net=dropout_pair, interrupts=StopAtStep(3 * 7 + 3))
    resumed = run(RESUME_CONFIG, store, make_net=dropout_pair)
    uninterrupted = run(RESUME_CONFIG, make_net=dropout_pair)
    assert_same(resumed, uninterrupted)
    assert uninterrupted[1].kept_val is not None


def test_a_checkpoint_of_an_older_state_format_is_refused_with_the_reason(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "ckpt"))
    with pytest.raises(TrainingInterrupted):
        run(RESUME_CONFIG, store, make_net=dropout_pair, interrupts=StopAtStep(9))
    snapshot = store.load(store.pointer())
    progress = json.loads(snapshot["progress"])
    snapshot["progress"] = json.dumps({**progress, "format": 2})
    with pytest.raises(UnsupportedStateError, match=r"state format 2 is not supported.*one-hot"):
        run(RESUME_CONFIG, make_net=dropout_pair, resume=snapshot)
