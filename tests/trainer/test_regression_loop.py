"""The training loop on a regression target: MSE or Huber on the standardised target, an
ensemble's members each on their own loss, validation metrics in the target's units, and a
resume that ends exactly like an uninterrupted run (bitwise on the CPU)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from common.metrics import ClassificationMetrics, RegressionMetrics, regression_metrics
from tabular_model.model_config import SettingError
from tabular_model.network import NetworkConfig, TabularMLP
from tabular_model.transform import TargetScaling
from tests.trainer.test_loop import CONFIG, separable
from tests.trainer.test_resume import RESUME_CONFIG, StopAtStep, assert_same, saver
from trainer.checkpoint import CheckpointStore
from trainer.loop import (
    EpochRecord,
    LoopCallbacks,
    LoopConfig,
    LoopOutcome,
    LoopRuntime,
    TensorSplit,
    TrainingInterrupted,
    ValidationMetrics,
    fit,
    make_optimization,
    metrics_text,
    training_loss,
    validation_metrics,
)

# A target far from 0 and far from unit scale, so that a metric left on the standardised
# scale would be obvious.
SCALING = TargetScaling(center=50.0, scale=10.0)


def wavy(rows: int, seed: int) -> tuple[TensorSplit, np.ndarray]:
    """A regression split (target standardised by SCALING) and its target in its own units:
    a smooth function of two numeric features and a categorical one, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 2, generator=gen)
    cat = torch.randint(0, 4, (rows, 1), generator=gen)
    signal = torch.sin(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.4 * (cat[:, 0].float() - 1.5)
    noise = 0.1 * torch.randn(rows, generator=gen)
    units = (50.0 + 10.0 * (signal + noise)).double().numpy()
    target = torch.from_numpy(SCALING.scale_values(units))
    return TensorSplit(x, cat, target), units


def regression_net(ensemble_size: int = 1, dropout: float = 0.0, seed: int = 0) -> TabularMLP:
    torch.manual_seed(seed)
    config = NetworkConfig(
        2,
        (4,),
        1,
        width=32,
        depth=2,
        dropout=dropout,
        ensemble_size=ensemble_size,
        task="regression",
    )
    return TabularMLP(config)


def scaled_runtime(**fields: Any) -> LoopRuntime:
    return LoopRuntime(target_scaling=SCALING, **fields)


def test_fit_learns_a_regression_and_reports_metrics_in_the_targets_units() -> None:
    (train, _), (val, val_units) = wavy(600, seed=1), wavy(300, seed=2)
    net = regression_net()
    before = validation_metrics(net, val, target_scaling=SCALING)
    outcome = fit(net, train, val, dataclasses.replace(CONFIG, epochs=25), scaled_runtime())
    after = validation_metrics(net, val, target_scaling=SCALING)
    assert isinstance(after, RegressionMetrics)
    mean_rmse = float(np.sqrt(np.mean((val_units - val_units.mean()) ** 2)))
    assert after.rmse < 0.4 * mean_rmse and after.r2 > 0.8
    assert after.loss < before.loss and outcome.best.val == after
    # The same numbers from the predictions taken back to the target's units.
    predicted = SCALING.unscale(net(val.numeric, val.categorical).detach().squeeze(-1).numpy())
    expected = regression_metrics(predicted, val_units, after.loss)
    assert after.rmse == pytest.approx(expected.rmse, rel=1e-4)
    assert after.mae == pytest.approx(expected.mae, rel=1e-4)
    assert after.r2 == pytest.approx(expected.r2, rel=1e-4)
    # The loss stays on the standardised scale: its MSE is the RMSE in units over the scale.
    assert after.loss == pytest.approx((after.rmse / SCALING.scale) ** 2, rel=1e-3)
    assert validation_metrics(net, val, chunk_rows=64, target_scaling=SCALING) == after


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_an_ensemble_trains_each_member_on_its_own_loss(loss: str) -> None:
    (train, _), (val, _) = wavy(400, seed=1), wavy(200, seed=2)
    net = regression_net(ensemble_size=3)
    config = dataclasses.replace(CONFIG, loss=loss, epochs=15)
    optimization = make_optimization(net, train, config)
    outputs = net(train.numeric, train.categorical)
    assert outputs.shape == (train.rows, 3, 1)
    function = torch.nn.functional.huber_loss if loss == "huber" else torch.nn.functional.mse_loss
    members = [function(outputs[:, i, 0], train.target) for i in range(3)]
    loss_value = training_loss(outputs, train.target, optimization, config)
    torch.testing.assert_close(loss_value, torch.stack(members).mean())
    fit(net, train, val, config, scaled_runtime())
    assert validation_metrics(net, val, loss=loss, target_scaling=SCALING).r2 > 0.8  # type: ignore[union-attr]


def test_huber_weighs_large_errors_linearly() -> None:
    predicted, target = torch.tensor([0.0, 0.0]), torch.tensor([0.5, 4.0])
    optimization = make_optimization(regression_net(), wavy(10, seed=0)[0], CONFIG)
    mse = training_loss(predicted[:, None], target, optimization, CONFIG)
    huber = training_loss(
        predicted[:, None], target, optimization, dataclasses.replace(CONFIG, loss="huber")
    )
    assert float(mse) == pytest.approx((0.25 + 16) / 2)
    assert float(huber) == pytest.approx((0.5 * 0.25 + (4 - 0.5)) / 2)


@pytest.mark.parametrize(
    ("task", "changes", "setting"),
    [
        ("classification", {"loss": "huber"}, "loss"),
        ("classification", {"loss": "mse"}, "loss"),
        ("regression", {"class_weights": "balanced"}, "class_weights"),
        ("regression", {"label_smoothing": 0.2}, "label_smoothing"),
    ],
)
def test_settings_of_the_other_task_are_refused(
    task: str, changes: dict[str, Any], setting: str
) -> None:
    with pytest.raises(SettingError) as refused:
        LoopConfig(**changes).for_task(task)
    assert refused.value.setting == setting


def test_the_task_resolves_an_auto_loss() -> None:
    assert LoopConfig().for_task("regression").loss == "mse"
    assert LoopConfig(loss="huber").for_task("regression").loss == "huber"
    assert LoopConfig().for_task("classification") == LoopConfig()


def test_a_regression_drops_the_default_label_smoothing() -> None:
    assert LoopConfig().label_smoothing == 0.1
    assert LoopConfig().for_task("regression").label_smoothing == 0.0
    assert LoopConfig(label_smoothing=0.0).for_task("regression").label_smoothing == 0.0
    assert LoopConfig().for_task("classification").label_smoothing == 0.1


def test_a_classification_net_refuses_a_regression_loss() -> None:
    train = separable(100, seed=1)
    net = TabularMLP(NetworkConfig(2, (4,), 2, width=8, depth=1))
    with pytest.raises(SettingError, match="loss"):
        fit(net, train, train, dataclasses.replace(CONFIG, loss="mse"))


@pytest.mark.parametrize(
    ("val", "text"),
    [
        (RegressionMetrics(1.5, 1.25, 0.75, 0.125), "val_rmse=1.5 val_mae=1.25 val_r2=0.7500"),
        (ClassificationMetrics(0.875, 0.5, 0.25), "val_loss=0.2500 val_accuracy=0.8750"),
    ],
)
def test_epoch_records_of_either_task_survive_a_checkpoints_json(
    val: ValidationMetrics, text: str
) -> None:
    record = EpochRecord(3, 0.5, val, 100.0)
    outcome = LoopOutcome(history=[record], best_epoch=1, train_samples=10, train_seconds=1.0)
    assert LoopOutcome.from_dict(json.loads(json.dumps(outcome.to_dict()))) == outcome
    assert text in metrics_text(val)


def run(
    store: CheckpointStore | None = None, **runtime: Any
) -> tuple[dict[str, torch.Tensor], LoopOutcome]:
    """A fresh regression run (ensemble of 2 with dropout, schedule, clipping), resumed from
    ``store``'s latest checkpoint and checkpointing into it."""
    (train, _), (val, _) = wavy(400, seed=1), wavy(200, seed=2)
    net = regression_net(ensemble_size=2, dropout=0.2, seed=3)
    callbacks = LoopCallbacks()
    if store is not None:
        pointer = store.pointer()
        runtime.setdefault("resume", store.load(pointer) if pointer else None)
        callbacks = LoopCallbacks(checkpoint=saver(store))
    outcome = fit(net, train, val, RESUME_CONFIG, scaled_runtime(**runtime), callbacks)
    return net.state_dict(), outcome


def test_a_resumed_regression_ends_exactly_like_an_uninterrupted_one(tmp_path: Path) -> None:
    uninterrupted = run()
    assert all(isinstance(r.val, RegressionMetrics) for r in uninterrupted[1].history)
    assert all(math.isfinite(r.val.rmse) for r in uninterrupted[1].history)  # type: ignore[union-attr]
    store = CheckpointStore(str(tmp_path / "ckpt"))
    for at in (4, 16):  # mid-epoch 1, then mid-epoch 3 (7 steps per epoch)
        with pytest.raises(TrainingInterrupted, match="step"):
            run(store, interrupts=StopAtStep(at))
    assert_same(run(store), uninterrupted)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_a_regression_trains_under_bf16_autocast_with_fp32_losses() -> None:
    (train, _), (val, _) = wavy(600, seed=1), wavy(300, seed=2)
    cuda_train, cuda_val = (
        TensorSplit(s.numeric.cuda(), s.categorical.cuda(), s.target.cuda()) for s in (train, val)
    )
    net = regression_net(ensemble_size=2).cuda()
    config = dataclasses.replace(CONFIG, epochs=25)
    outcome = fit(net, cuda_train, cuda_val, config, scaled_runtime(device=torch.device("cuda")))
    best = outcome.best.val
    assert isinstance(best, RegressionMetrics) and best.r2 > 0.8
    assert all(math.isfinite(r.train_loss) for r in outcome.history)
