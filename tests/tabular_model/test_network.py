"""The network: the model settings, embedding sizes, forward shapes, probabilities, config
round trip."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tabular_model.network import (
    ModelConfig,
    NetworkConfig,
    SettingError,
    TabularMLP,
    as_tensors,
    embedding_dim,
    predict_proba,
)


def make_inputs(
    rows: int, numeric: int, cardinalities: tuple[int, ...]
) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, numeric, generator=gen)
    codes = [torch.randint(0, card, (rows,), generator=gen) for card in cardinalities]
    cat = torch.stack(codes, dim=1) if codes else torch.zeros((rows, 0), dtype=torch.int64)
    return x, cat


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": 0}, "width must be positive, got 0"),
        ({"depth": -1}, "depth must be positive, got -1"),
        ({"embedding_dim": 0}, "embedding_dim must be positive, got 0"),
        ({"ple_bins": -3}, "ple_bins must be positive, got -3"),
        ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
        ({"dropout": float("nan")}, "dropout must be in [0, 1), got nan"),
        ({"periodic_sigma": 0.0}, "periodic_sigma must be a positive number, got 0.0"),
        ({"periodic_sigma": float("inf")}, "periodic_sigma must be a positive number, got inf"),
        ({"numeric_embedding": "fourier"}, "numeric_embedding must be one of ('none', "),
    ],
)
def test_model_config_refuses_values_out_of_range(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingError, match=re.escape(message)) as refused:
        dataclasses.replace(ModelConfig(), **changes)
    assert refused.value.setting == next(iter(changes))


@pytest.mark.parametrize(
    ("cardinality", "expected"),
    [(1, 2), (2, 2), (3, 3), (5, 4), (10, 6), (16, 8), (50, 14), (100, 21), (200, 31),
     (500, 32), (10**6, 32)],
)  # fmt: skip
def test_embedding_dim_rule_of_thumb(cardinality: int, expected: int) -> None:
    # min(32, max(2, round(1.6 * n ** 0.56)))
    assert embedding_dim(cardinality) == expected


def test_embedding_dim_is_monotonic_and_bounded() -> None:
    dims = [embedding_dim(c) for c in range(1, 2000)]
    assert dims == sorted(dims)
    assert min(dims) == 2
    assert max(dims) == 32


@pytest.mark.parametrize(
    ("numeric", "cardinalities", "n_classes", "depth"),
    [(5, (4, 40, 1000), 2, 3), (3, (), 3, 1), (0, (7, 9), 4, 2), (6, (11,), 2, 0)],
)
def test_forward_shapes(
    numeric: int, cardinalities: tuple[int, ...], n_classes: int, depth: int
) -> None:
    config = NetworkConfig(numeric, cardinalities, n_classes, width=16, depth=depth, dropout=0.0)
    net = TabularMLP(config)
    x, cat = make_inputs(13, numeric, cardinalities)
    logits = net(x, cat)
    assert logits.shape == (13, n_classes)
    assert logits.dtype == torch.float32
    assert [e.num_embeddings for e in net.embeddings] == list(cardinalities)
    assert [e.embedding_dim for e in net.embeddings] == [embedding_dim(c) for c in cardinalities]
    linears = [m for m in net.mlp if isinstance(m, nn.Linear)]
    assert len(linears) == depth + 1
    assert linears[0].in_features == numeric + sum(embedding_dim(c) for c in cardinalities)
    assert linears[-1].out_features == n_classes
    assert all(m.out_features == 16 for m in linears[:-1])


def test_forward_rejects_out_of_vocabulary_code() -> None:
    net = TabularMLP(NetworkConfig(2, (3,), 2, width=8, depth=1))
    x = torch.zeros(1, 2)
    with pytest.raises(IndexError):
        net(x, torch.tensor([[3]]))  # codes are 0..cardinality-1


def test_predict_proba_rows_sum_to_one_and_mode_is_restored() -> None:
    net = TabularMLP(NetworkConfig(4, (5, 6), 3, width=16, depth=2, dropout=0.5))
    x, cat = make_inputs(257, 4, (5, 6))
    net.train()
    proba = predict_proba(net, x, cat, batch_size=100)  # several chunks
    assert proba.shape == (257, 3)
    torch.testing.assert_close(proba.sum(1), torch.ones(257))
    assert net.training  # put back in training mode
    # Chunking does not change the result, and eval mode makes it deterministic (no dropout).
    torch.testing.assert_close(proba, predict_proba(net, x, cat, batch_size=65536))
    net.eval()
    assert not predict_proba(net, x, cat).requires_grad
    assert not net.training


def test_predict_proba_of_no_rows() -> None:
    net = TabularMLP(NetworkConfig(2, (3,), 4, width=8, depth=1))
    proba = predict_proba(net, torch.zeros(0, 2), torch.zeros((0, 1), dtype=torch.int64))
    assert proba.shape == (0, 4)


def test_network_config_json_round_trip() -> None:
    config = NetworkConfig(7, (3, 12), 2, width=32, depth=2, dropout=0.25)
    assert NetworkConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_as_tensors_dtypes_and_contiguity() -> None:
    numeric = np.arange(12, dtype="float64").reshape(3, 4)[:, ::2]  # non-contiguous float64
    categorical = np.array([[1, 2], [3, 4], [5, 6]], dtype="int32")
    x, cat = as_tensors(numeric, categorical, torch.device("cpu"))
    assert x.dtype == torch.float32 and cat.dtype == torch.int64
    assert x.is_contiguous() and cat.is_contiguous()
    np.testing.assert_array_equal(x.numpy(), numeric.astype("float32"))
    np.testing.assert_array_equal(cat.numpy(), categorical)


def test_an_ensemble_gives_member_logits_and_averages_their_probabilities() -> None:
    torch.manual_seed(0)
    config = NetworkConfig(3, (4,), 5, width=16, depth=2, ensemble_size=4)
    net = TabularMLP(config).eval()
    x, cat = make_inputs(9, 3, (4,))
    logits = net(x, cat)
    assert logits.shape == (9, 4, 5)
    members = torch.softmax(logits, -1)
    assert not torch.allclose(members[:, 0], members[:, 1])  # members differ from the start
    torch.testing.assert_close(predict_proba(net, x, cat), members.mean(1))
    assert set(TabularMLP(dataclasses.replace(config, ensemble_size=1)).state_dict()) == {
        k for k in net.state_dict() if not k.startswith(("member_scale", "heads"))
    } | {"mlp.6.weight", "mlp.6.bias"}  # one network: the output layer is the MLP's last
