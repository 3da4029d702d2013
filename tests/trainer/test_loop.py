"""The training loop on tiny synthetic problems: learning, best-epoch restore, early stopping,
determinism and divergence."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import re
from typing import Any

import pytest
import torch

from tabular_model.network import NetworkConfig, SettingError, TabularMLP, predict_proba
from trainer.loop import (
    DivergedError,
    LoopCallbacks,
    LoopConfig,
    LoopOutcome,
    LoopRuntime,
    TensorSplit,
    Training,
    WeightAverage,
    balanced_class_weights,
    fit,
    lr_factor,
    make_optimization,
    make_optimizer,
    training_loss,
    validation_metrics,
)
from trainer.loop_config import auto_batch_size, auto_epochs

# A constant learning rate, no clipping and no label smoothing, unlike the trainer's defaults:
# the tests below turn them on where they are what is tested.
CONFIG = LoopConfig(
    lr=3e-2, batch_size=100, optimizer="adam", epochs=8, weight_decay=0.0, patience=100, seed=0,
    lr_schedule="constant", warmup_epochs=0.0, grad_clip=0.0, label_smoothing=0.0,
)  # fmt: skip


def training_of(net: TabularMLP, train: TensorSplit, config: LoopConfig) -> Training:
    """What ``fit`` trains ``net`` on ``train`` with, so that a test can run one epoch of it."""
    return Training(net, train, train, config, LoopRuntime(), LoopCallbacks())


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
    before = validation_metrics(net, val)
    outcome = fit(net, train, val, CONFIG)
    after = validation_metrics(net, val)
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
    restored = validation_metrics(net, val)
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


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "rmsprop"}, "optimizer must be one of ('adam', 'adamw', 'sgd'), got 'rms"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of ('constant', 'cosine'), got 'step'"),
        ({"class_weights": "auto"}, "class_weights must be one of ('none', 'balanced'), got"),
        ({"lr": 0.0}, "lr must be positive, got 0.0"),
        ({"lr": math.nan}, "lr must be positive, got nan"),
        ({"batch_size": -1}, "batch_size must not be negative (0: auto), got -1"),
        ({"epochs": -1}, "epochs must not be negative (0: auto), got -1"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1), got 1.0"),
        ({"label_smoothing": math.nan}, "label_smoothing must be in [0, 1), got nan"),
        ({"ema_decay": 1.0}, "ema_decay must be in [0, 1), got 1.0"),
        ({"ema_decay": -0.5}, "ema_decay must be in [0, 1), got -0.5"),
        ({"patience": 0}, "patience must be positive, got 0"),
        ({"weight_decay": -1e-4}, "weight_decay must not be negative, got -0.0001"),
        ({"warmup_epochs": -1.0}, "warmup_epochs must not be negative, got -1.0"),
        ({"grad_clip": -0.5}, "grad_clip must not be negative, got -0.5"),
    ],
)  # fmt: skip
def test_loop_config_refuses_values_out_of_range(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingError, match=re.escape(message)) as refused:
        dataclasses.replace(CONFIG, **changes)
    assert refused.value.setting == next(iter(changes))


def test_loop_config_defaults_are_the_trainers() -> None:
    assert LoopConfig() == LoopConfig(
        lr=1e-3, batch_size=0, optimizer="adamw", epochs=0, weight_decay=1e-5, patience=16,
        seed=0, lr_schedule="cosine", warmup_epochs=1.0, grad_clip=1.0, class_weights="none",
        label_smoothing=0.1, ema_decay=0.99,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "batch_size", "epochs"),
    [
        (100, 128, 100),  # one step per epoch: the most epochs
        (1_257, 128, 100),  # 10 steps per epoch, 1,000 steps in all
        (8_192, 256, 100),  # rows / 32 exactly
        (8_191, 128, 100),
        (32_768, 1024, 100),  # 32 steps per epoch: 3,200 steps
        (1_000_000, 1024, 21),  # 977 steps per epoch: about 20,000 steps
        (100_000_000, 1024, 20),  # the fewest epochs
    ],
)
def test_auto_budget_follows_the_training_rows(rows: int, batch_size: int, epochs: int) -> None:
    assert auto_batch_size(rows) == batch_size
    assert auto_epochs(rows, batch_size) == epochs
    resolved = LoopConfig().for_rows(rows)
    assert (resolved.batch_size, resolved.epochs) == (batch_size, epochs)
    assert resolved.resolved and not LoopConfig().resolved


def test_explicit_batch_size_and_epochs_win_over_auto() -> None:
    assert LoopConfig(batch_size=64, epochs=3).for_rows(10**6) == LoopConfig(
        batch_size=64, epochs=3
    )
    # Epochs follow the batch size the user chose: 2 steps per epoch at 512.
    assert LoopConfig(batch_size=512).for_rows(1_000).epochs == 100
    assert LoopConfig(batch_size=1_000_000).for_rows(2 * 10**9).epochs == 20  # 2,000 steps each


def test_fit_with_auto_budget_trains_the_resolved_number_of_epochs() -> None:
    train, val = separable(300, seed=1), separable(200, seed=2)
    config = dataclasses.replace(CONFIG, batch_size=0, epochs=0, patience=1_000)
    training = training_of(new_net(), train, config)
    assert (training.config.batch_size, training.config.epochs) == (128, 100)
    outcome = fit(new_net(), train, val, dataclasses.replace(config, epochs=3))
    assert outcome.train_samples == 3 * train.rows  # the batch size was auto, epochs were not


def test_an_ensemble_trains_each_member_on_its_own_loss() -> None:
    train, val = separable(400, seed=1), separable(300, seed=2)
    torch.manual_seed(0)
    net = TabularMLP(NetworkConfig(2, (4,), 2, width=32, depth=2, dropout=0.0, ensemble_size=3))
    config = dataclasses.replace(CONFIG, label_smoothing=0.1, class_weights="balanced")
    optimization = make_optimization(net, train, config)
    logits = net(train.numeric, train.categorical)
    members = [
        torch.nn.functional.cross_entropy(
            logits[:, i], train.target, weight=optimization.class_weights, label_smoothing=0.1
        )
        for i in range(3)
    ]
    loss = training_loss(logits, train.target, optimization, config)
    torch.testing.assert_close(loss, torch.stack(members).mean())
    fit(net, train, val, config)
    accuracy = (predict_proba(net, val.numeric, val.categorical).argmax(1) == val.target).float()
    assert accuracy.mean() > 0.9


def test_label_smoothing_keeps_predictions_from_saturating() -> None:
    train = separable(400, seed=1)
    config = dataclasses.replace(CONFIG, epochs=20)
    sharp, smooth = new_net(), new_net()
    fit(sharp, train, train, config)
    fit(smooth, train, train, dataclasses.replace(config, label_smoothing=0.2))
    top = [
        predict_proba(n, train.numeric, train.categorical).max(1).values.mean()
        for n in (sharp, smooth)
    ]
    # Smoothing 0.2 over 2 classes makes 0.9 the target's probability.
    assert float(top[0]) > 0.95 and 0.85 < float(top[1]) < 0.93


def test_lr_factor_warms_up_linearly_then_decays_by_cosine_to_zero() -> None:
    config = dataclasses.replace(CONFIG, epochs=4, lr_schedule="cosine", warmup_epochs=1.0)
    factors = [lr_factor(step, config, steps_per_epoch=10) for step in range(40)]
    assert factors[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert factors[10] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(factors[10:]))
    assert factors[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 29 / 30)))
    assert lr_factor(40, config, 10) == pytest.approx(0.0)


def test_constant_schedule_and_a_warmup_longer_than_the_run() -> None:
    constant = dataclasses.replace(CONFIG, epochs=2, lr_schedule="constant", warmup_epochs=0.5)
    assert [lr_factor(s, constant, 4) for s in range(8)] == pytest.approx(
        [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    )
    long = dataclasses.replace(CONFIG, epochs=1, lr_schedule="cosine", warmup_epochs=5.0)
    assert [lr_factor(s, long, 4) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_the_schedule_drives_the_optimizer_step_by_step() -> None:
    train = separable(400, seed=1)
    config = dataclasses.replace(CONFIG, epochs=3, lr_schedule="cosine", warmup_epochs=1.0)
    steps = math.ceil(train.rows / config.batch_size)
    training = training_of(new_net(), train, config)
    optimizer = training.optimization.optimizer
    assert optimizer.param_groups[0]["lr"] == pytest.approx(config.lr / steps)
    training.run_epoch(1)
    expected = config.lr * lr_factor(steps, config, steps)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_balanced_class_weights_make_every_class_weigh_the_same() -> None:
    weights = balanced_class_weights(torch.tensor([0, 0, 0, 1]), n_classes=3)
    assert weights.tolist() == pytest.approx([4 / 9, 4 / 3, 4 / 3])  # an absent class counts as 1
    counts = torch.tensor([3.0, 1.0])
    assert float((weights[:2] * counts).sum()) == pytest.approx(4 / 9 * 3 + 4 / 3)


def test_class_weights_shift_predictions_towards_the_minority_class() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2000, 2, generator=gen)
    noisy = x[:, 0] + 1.5 * torch.randn(2000, generator=gen)
    y = (noisy > 1.6).long()  # about 15 % positives, heavily overlapping
    data = TensorSplit(x, torch.zeros(2000, 1, dtype=torch.long), y)
    predicted_positive = {}
    for mode in ("none", "balanced"):
        net = TabularMLP(NetworkConfig(2, (1,), 2, width=16, depth=1, dropout=0.0))
        torch.manual_seed(0)
        fit(net, data, data, dataclasses.replace(CONFIG, epochs=4, class_weights=mode))
        predicted_positive[mode] = int(predict_proba(net, x, data.categorical).argmax(1).sum())
    assert predicted_positive["balanced"] > 2 * max(predicted_positive["none"], 1)


def test_gradient_clipping_bounds_each_sgd_step() -> None:
    train = separable(400, seed=1)
    changes = {}
    for clip in (0.0, 1e-8):
        net = new_net()
        before = [p.detach().clone() for p in net.parameters()]
        config = dataclasses.replace(CONFIG, optimizer="sgd", lr=0.5, epochs=1, grad_clip=clip)
        training_of(net, train, config).run_epoch(1)
        changes[clip] = max(
            float((p.detach() - b).abs().max())
            for p, b in zip(net.parameters(), before, strict=True)
        )
    assert changes[0.0] > 1e-3
    assert changes[1e-8] < 1e-6


def test_each_epoch_logs_a_line_with_loss_metric_throughput_and_eta(
    caplog: pytest.LogCaptureFixture,
) -> None:
    train, val = separable(200, seed=1), separable(100, seed=2)
    with caplog.at_level("INFO", logger="trainer.loop"):
        fit(new_net(), train, val, dataclasses.replace(CONFIG, epochs=3))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    for line in lines:
        fields = dict(item.split("=") for item in line.split()[2:])
        assert set(fields) == {"train_loss", "val_loss", "val_accuracy", "samples/s", "eta"}
    assert lines[-1].endswith("eta=0s")


def test_adam_is_fused_only_on_cuda() -> None:
    for name in ("adam", "adamw"):
        optimizer = make_optimizer(new_net(), dataclasses.replace(CONFIG, optimizer=name))
        assert not optimizer.defaults["fused"], name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_adam_is_fused_on_cuda_and_trains() -> None:
    train, val = separable(400, seed=1), separable(300, seed=2)
    moved = [
        TensorSplit(s.numeric.cuda(), s.categorical.cuda(), s.target.cuda()) for s in (train, val)
    ]
    net = new_net().cuda()
    for name in ("adam", "adamw"):
        assert make_optimizer(net, dataclasses.replace(CONFIG, optimizer=name)).defaults["fused"]
    fit(net, moved[0], moved[1], CONFIG)
    assert validation_metrics(net, moved[1]).accuracy >= 0.95


def test_the_weight_average_is_the_bias_corrected_moving_average_of_the_steps() -> None:
    net = torch.nn.Linear(1, 1, bias=False)
    average = WeightAverage(net, decay=0.9)
    trained = [2.0, -1.0, 4.0, 0.5]
    for step, value in enumerate(trained, start=1):
        with torch.no_grad():
            net.weight.fill_(value)
        average.update()
        weights = [0.9 ** (step - i) for i in range(1, step + 1)]
        expected = sum(w * v for w, v in zip(weights, trained, strict=False)) / sum(weights)
        assert average.net.weight.item() == pytest.approx(expected, rel=1e-6)
    assert average.steps == len(trained)
    assert not average.net.weight.requires_grad and net.weight.requires_grad


def one_epoch_kept_and_trained(
    ema_decay: float,
) -> tuple[Training, LoopOutcome, dict[str, torch.Tensor]]:
    """One epoch on a separable problem (val = train), and the weights as trained at its end."""
    train = separable(400, seed=1)
    net = new_net()
    trained: dict[str, torch.Tensor] = {}
    callbacks = LoopCallbacks(on_epoch=lambda _: trained.update(copy.deepcopy(net.state_dict())))
    config = dataclasses.replace(CONFIG, epochs=1, ema_decay=ema_decay)
    training = Training(net, train, train, config, LoopRuntime(), callbacks)
    return training, training.fit(), trained


def test_the_weights_validated_and_kept_are_the_moving_average() -> None:
    training, outcome, trained = one_epoch_kept_and_trained(ema_decay=0.9)
    net, average = training.net, training.optimization.average
    assert average is not None and average.steps == 4  # 400 rows at batch 100
    for name, kept in net.state_dict().items():
        assert torch.equal(kept, average.net.state_dict()[name]), name
    assert any(not torch.equal(trained[k], v) for k, v in net.state_dict().items())
    restored = validation_metrics(net, training.train)
    assert restored.loss == pytest.approx(outcome.best.val.loss, rel=1e-6)


def test_no_average_keeps_the_trained_weights() -> None:
    training, _, trained = one_epoch_kept_and_trained(ema_decay=0)
    assert training.optimization.average is None
    for name, kept in training.net.state_dict().items():
        assert torch.equal(kept, trained[name]), name


def noisy_separable(rows: int, seed: int) -> TensorSplit:
    """``separable`` with 30 % of the labels flipped: a network soon starts to overfit it."""
    split = separable(rows, seed)
    flip = torch.rand(rows, generator=torch.Generator().manual_seed(seed + 7)) < 0.3
    return TensorSplit(
        split.numeric, split.categorical, torch.where(flip, 1 - split.target, split.target)
    )


def test_each_network_of_a_pair_keeps_the_weights_of_its_own_best_epoch() -> None:
    torch.manual_seed(1)
    edges = ((-1.0, 0.0, 1.0), (-1.0, 0.0, 1.0))
    net = TabularMLP(
        NetworkConfig(2, (4,), 2, width=16, depth=1, dropout=0.0,
                      numeric_embedding="ple+periodic", ple_edges=edges, numeric_linear=True)
    )  # fmt: skip
    train, val = noisy_separable(200, seed=1), noisy_separable(300, seed=2)
    seen: list[list[tuple[float, dict[str, torch.Tensor]]]] = []  # per epoch, per network

    def record_networks(_: Any) -> None:
        networks = training.kept_net.networks()
        seen.append(
            [(validation_metrics(n, val).loss, copy.deepcopy(n.state_dict())) for _, n in networks]
        )

    config = dataclasses.replace(CONFIG, epochs=10, lr=1e-2, ema_decay=0.0)
    training = Training(net, train, val, config, LoopRuntime(), LoopCallbacks(record_networks))
    outcome = training.fit()
    best_epochs = []
    for i, (_, network) in enumerate(net.networks()):
        losses = [epoch[i][0] for epoch in seen]
        best = losses.index(min(losses))
        best_epochs.append(best + 1)
        for key, value in network.state_dict().items():
            assert torch.equal(value, seen[best][i][1][key]), (i, key)
    assert best_epochs[0] != best_epochs[1]  # the case the pair is kept for
    assert outcome.best_epoch == max(best_epochs)  # the last epoch that improved one of them
    assert outcome.kept_val is not None
    assert outcome.kept.loss == pytest.approx(validation_metrics(net, val).loss, rel=1e-6)
    assert outcome.kept.loss < min(r.val.loss for r in outcome.history)  # no epoch had both
