"""The training loop on tiny synthetic problems: learning, best-epoch restore, early stopping,
determinism and divergence."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainer.loop import DivergedError, LoopConfig, TensorSplit, evaluate, fit, make_optimizer
from trainer.network import NetworkConfig, TabularMLP

CONFIG = LoopConfig(
    lr=3e-2, batch_size=100, optimizer="adam", epochs=8, weight_decay=0.0, patience=100, seed=0
)


def separable(rows: int, seed: int, flip: bool = False) -> TensorSplit:
    """Class 1 when x0 + x1 > 0 (inverted with ``flip``); a noise categorical column."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 2, generator=gen)
    cat = torch.randint(0, 4, (rows, 1), generator=gen)
    y = ((x[:, 0] + x[:, 1]) > 0).long()
    return TensorSplit(x, cat, 1 - y if flip else y)


def new_net(seed: int = 0) -> TabularMLP:
    torch.manual_seed(seed)
    return TabularMLP(NetworkConfig(2, (4,), 2, width=32, depth=2, dropout=0.0))


def test_fit_learns_a_separable_problem() -> None:
    train, val = separable(400, seed=1), separable(300, seed=2)
    net = new_net()
    before = evaluate(net, val)
    outcome = fit(net, train, val, CONFIG)
    after = evaluate(net, val)
    assert after.accuracy >= 0.95
    assert after.loss < before.loss
    assert outcome.best.val.accuracy == after.accuracy
    assert len(outcome.history) == CONFIG.epochs
    assert [r.epoch for r in outcome.history] == list(range(1, CONFIG.epochs + 1))
    assert outcome.train_samples == CONFIG.epochs * train.rows
    assert outcome.samples_per_sec > 0
    assert all(r.samples_per_sec > 0 for r in outcome.history)


def test_best_epoch_has_the_minimum_val_loss_and_its_weights_are_restored() -> None:
    # Validation labels are the opposite of training labels: the better the net fits train,
    # the worse val gets, so the best epoch is an early one and the last epoch is worse.
    train, val = separable(400, seed=1), separable(300, seed=2, flip=True)
    net = new_net()
    outcome = fit(net, train, val, dataclasses.replace(CONFIG, epochs=6))
    losses = [r.val.loss for r in outcome.history]
    assert outcome.best.val.loss == min(losses)
    assert outcome.best_epoch == losses.index(min(losses)) + 1
    assert outcome.best_epoch < len(outcome.history)
    assert losses[-1] > outcome.best.val.loss
    restored = evaluate(net, val)
    assert restored.loss == pytest.approx(outcome.best.val.loss, rel=1e-6)
    assert restored.accuracy == outcome.best.val.accuracy


def test_early_stopping_after_patience_epochs_without_improvement() -> None:
    train, val = separable(400, seed=1), separable(300, seed=2, flip=True)
    outcome = fit(new_net(), train, val, dataclasses.replace(CONFIG, epochs=50, patience=2))
    assert len(outcome.history) == outcome.best_epoch + 2
    assert len(outcome.history) < 50


def test_same_seed_gives_identical_results() -> None:
    train, val = separable(400, seed=1), separable(200, seed=2)
    config = dataclasses.replace(CONFIG, epochs=3)
    runs = []
    for _ in range(2):
        net = new_net(seed=3)
        outcome = fit(net, train, val, config)
        runs.append((net.state_dict(), [(r.train_loss, r.val) for r in outcome.history]))
    (state_a, history_a), (state_b, history_b) = runs
    assert history_a == history_b
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def test_a_different_shuffling_seed_gives_different_results() -> None:
    train, val = separable(400, seed=1), separable(200, seed=2)
    config = dataclasses.replace(CONFIG, epochs=2)
    histories = []
    for seed in (0, 1):
        outcome = fit(new_net(seed=3), train, val, dataclasses.replace(config, seed=seed))
        histories.append([r.train_loss for r in outcome.history])
    assert histories[0] != histories[1]


def test_huge_learning_rate_diverges() -> None:
    train, val = separable(400, seed=1), separable(200, seed=2)
    config = dataclasses.replace(CONFIG, lr=1e6, optimizer="sgd", epochs=3)
    with pytest.raises(DivergedError, match="lower --lr"):
        fit(new_net(), train, val, config)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_make_optimizer(name: str) -> None:
    optimizer = make_optimizer(new_net(), dataclasses.replace(CONFIG, optimizer=name, lr=0.05))
    assert type(optimizer).__name__.lower() == name
    assert optimizer.param_groups[0]["lr"] == 0.05


def test_make_optimizer_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="rmsprop"):
        make_optimizer(new_net(), dataclasses.replace(CONFIG, optimizer="rmsprop"))
