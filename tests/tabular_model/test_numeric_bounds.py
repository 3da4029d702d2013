"""A network clamps its numeric inputs to the training split's range: a row beyond anything seen
in training is scored as the nearest seen one (a tree ensemble's behaviour), instead of being
extrapolated by the linear parts; a config written before the bounds existed clamps nothing."""

from __future__ import annotations

import pytest
import torch

from tabular_model.model_config import ModelConfig
from tabular_model.network import NetworkConfig, TabularMLP, predict_values
from tests.tabular_model.test_network import make_inputs


def network(kind: str, task: str = "regression") -> tuple[TabularMLP, torch.Tensor]:
    train, _ = make_inputs(200, 3, ())
    model = ModelConfig(numeric_embedding=kind, width=16, depth=2)
    config = NetworkConfig.for_data(model, train, (), n_classes=2, task=task)
    torch.manual_seed(0)
    return TabularMLP(config), train


@pytest.mark.parametrize("kind", ["none", "ple", "periodic"])
def test_a_row_beyond_the_training_range_scores_as_the_range_edge(kind: str) -> None:
    net, train = network(kind)
    assert net.config.numeric_bounds == tuple(
        (float(lo), float(hi)) for lo, hi in zip(train.amin(0), train.amax(0), strict=True)
    )
    edge = train.amax(0).unsqueeze(0)
    far = edge * 1000  # as a mistyped value (58.9 mm for 5.89) lands after robust scaling
    no_codes = torch.zeros((1, 0), dtype=torch.int64)
    assert torch.equal(predict_values(net, far, no_codes), predict_values(net, edge, no_codes))
    inside = train[:5]  # rows within the range are scored as they are
    unclamped = TabularMLP(NetworkConfig(**{**vars(net.config), "numeric_bounds": ()}))
    unclamped.load_state_dict(net.state_dict())
    codes = torch.zeros((5, 0), dtype=torch.int64)
    assert torch.equal(predict_values(net, inside, codes), predict_values(unclamped, inside, codes))


def test_the_bounds_round_trip_and_stay_out_of_the_weights() -> None:
    net, _ = network("ple", task="classification")
    config = net.config
    assert NetworkConfig.from_dict(config.to_dict()) == config
    assert not {"numeric_low", "numeric_high"} & set(net.state_dict())


def test_a_config_written_before_the_bounds_clamps_nothing() -> None:
    net, _ = network("none")
    written = {k: v for k, v in net.config.to_dict().items() if k != "numeric_bounds"}
    assert NetworkConfig.from_dict(written).numeric_bounds == ()


@pytest.mark.parametrize(
    ("bounds", "problem"),
    [(((0.0, 1.0),), "has 1 features, not 3"), (((0.0, 1.0),) * 2 + ((2.0, 1.0),), "ordered")],
)
def test_bounds_that_do_not_fit_are_refused(bounds: tuple, problem: str) -> None:
    net, _ = network("none")
    with pytest.raises(ValueError, match=problem):
        NetworkConfig(**{**vars(net.config), "numeric_bounds": bounds})
