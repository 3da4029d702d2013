"""Numeric feature embeddings (periodic PLR and piecewise-linear) and the compiled network: shapes,
gradients, seeds, the PLE encoding and its bin edges, the config's JSON round trip, bf16
autocast, and the trained network served through the logged pyfunc model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from common import dataset
from common.tracking import configure_mlflow, ensure_experiment
from contract.xcom import xcom_path
from tabular_model.network import (
    ONE_HOT_MAX_CODES,
    ModelConfig,
    NetworkConfig,
    OneHot,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
    TabularMLP,
    as_tensors,
    compiled,
    embedding_dim,
    ple_bin_edges,
    predict_proba,
    predict_values,
)
from tabular_model.packaging import log_served_model
from tabular_model.transform import encode_features
from tests.tabular_model.test_network import make_inputs
from tests.trainer.workspace import (
    Workspace,
    build_workspace,
    features_of,
    load_model,
    mlflow_client,
    train,
    workspace_env,
)
from trainer.cli import main
from trainer.job import load_tensors
from trainer.loop import LoopConfig, LoopRuntime, TensorSplit, fit

CPU = torch.device("cpu")

CARDINALITIES = (4, 9)


def config_for(kind: str, numeric: int = 3, dim: int = 5, **extra: Any) -> NetworkConfig:
    """A small network with ``kind`` numeric embedding; PLE edges from seeded random data."""
    ple = kind in ("ple", "ple+periodic")
    edges = ple_bin_edges(make_inputs(200, numeric, ())[0], 6) if ple else ()
    return NetworkConfig(
        numeric, CARDINALITIES, 3, width=16, depth=2, dropout=0.0, numeric_embedding=kind,
        numeric_embedding_dim=dim, ple_edges=edges, **extra,
    )  # fmt: skip


# --- shapes, gradients, seeds --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["periodic", "ple"])
@pytest.mark.parametrize("numeric", [0, 1, 4])
def test_embedded_forward_shapes(kind: str, numeric: int) -> None:
    net = TabularMLP(config_for(kind, numeric, dim=5))
    x, cat = make_inputs(11, numeric, CARDINALITIES)
    assert net.numeric_embedding(x).shape == (11, numeric * 5)
    assert net(x, cat).shape == (11, 3)
    first = next(m for m in net.mlp if isinstance(m, nn.Linear))
    assert first.in_features == numeric * 5 + sum(embedding_dim(c) for c in CARDINALITIES)


def test_no_embedding_is_the_identity_and_adds_no_weights() -> None:
    net = TabularMLP(config_for("none"))
    x, _ = make_inputs(7, 3, ())
    assert torch.equal(net.numeric_embedding(x), x)
    assert not any(k.startswith("numeric_embedding") for k in net.state_dict())


def test_no_embedding_initialises_as_before_for_a_seed() -> None:
    # Building the (identity) numeric part consumes no random numbers: a seed gives the same
    # categorical embeddings and MLP as a network built without that option.
    torch.manual_seed(4)
    plain = TabularMLP(NetworkConfig(3, CARDINALITIES, 3, width=16, depth=2))
    torch.manual_seed(4)
    periodic = TabularMLP(config_for("periodic"))
    torch.manual_seed(4)
    explicit = TabularMLP(NetworkConfig(3, CARDINALITIES, 3, 16, 2, numeric_embedding="none"))
    for key, value in plain.state_dict().items():
        assert torch.equal(value, explicit.state_dict()[key]), key
    key = "embeddings.0.weight"
    assert torch.equal(plain.state_dict()[key], periodic.state_dict()[key])


@pytest.mark.parametrize("kind", ["periodic", "ple"])
def test_gradients_reach_every_embedding_parameter(kind: str) -> None:
    torch.manual_seed(0)
    net = TabularMLP(config_for(kind))
    x, cat = make_inputs(64, 3, CARDINALITIES)
    nn.functional.cross_entropy(net(x, cat), torch.arange(64) % 3).backward()
    for name, param in net.numeric_embedding.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["periodic", "ple"])
def test_a_seed_gives_the_same_network_and_another_seed_does_not(kind: str) -> None:
    def build(seed: int) -> TabularMLP:
        torch.manual_seed(seed)
        return TabularMLP(config_for(kind))

    x, cat = make_inputs(9, 3, CARDINALITIES)
    first, again, other = build(1), build(1), build(2)
    assert torch.equal(first(x, cat), again(x, cat))
    assert not torch.equal(first(x, cat), other(x, cat))


def test_periodic_frequencies_start_at_the_given_scale() -> None:
    torch.manual_seed(0)
    net = TabularMLP(config_for("periodic", numeric=40, periodic_sigma=0.5))
    assert isinstance(net.numeric_embedding, PeriodicEmbedding)
    frequencies = net.numeric_embedding.frequencies.detach()
    assert frequencies.shape == (40, 48)  # periodic_frequencies default
    assert frequencies.abs().max() <= 1.5  # truncated at 3 sigma
    assert frequencies.std().item() == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize("kind", ["periodic", "ple"])
def test_bf16_autocast_forward_and_backward(kind: str) -> None:
    torch.manual_seed(0)
    net = TabularMLP(config_for(kind))
    x, cat = make_inputs(32, 3, CARDINALITIES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x, cat)
    assert logits.dtype == torch.bfloat16
    nn.functional.cross_entropy(logits.float(), torch.arange(32) % 3).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(logits.float(), net(x, cat), atol=0.1, rtol=0.05)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["periodic", "ple"])
def test_bf16_autocast_on_cuda_matches_fp32(kind: str) -> None:
    torch.manual_seed(0)
    net = TabularMLP(config_for(kind)).cuda()
    x, cat = (t.cuda() for t in make_inputs(256, 3, CARDINALITIES))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = net(x, cat)
    assert logits.dtype == torch.bfloat16
    nn.functional.cross_entropy(logits.float(), (torch.arange(256) % 3).cuda()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    torch.testing.assert_close(logits.float(), net(x, cat), atol=0.1, rtol=0.05)


# --- the piecewise-linear encoding ---------------------------------------------------------------


def test_ple_encoding_at_and_between_edges_and_outside_the_range() -> None:
    ple = PiecewiseLinearEmbedding(((0.0, 1.0, 3.0), (2.0,), (-1.0, 1.0)), dim=2)
    x = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0])
    encoded = ple.encode(torch.stack([x, x, x], dim=1))
    # Feature 0: two bins [0, 1] and [1, 3]; the first open below, the last open above.
    expected = [[-1, 0], [0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1], [1, 2]]
    torch.testing.assert_close(encoded[:, 0], torch.tensor(expected, dtype=torch.float32))
    # Feature 1 is constant (one edge): x - 2 in its one bin, then a padding bin that stays 0.
    torch.testing.assert_close(encoded[:, 1, 0], x - 2.0)
    assert torch.equal(encoded[:, 1, 1], torch.zeros(7))
    # Feature 2: one bin from -1 to 1, open on both sides: a straight line.
    torch.testing.assert_close(encoded[:, 2, 0], (x + 1.0) / 2.0)
    assert torch.equal(encoded[:, 2, 1], torch.zeros(7))


def test_ple_bin_edges_are_training_quantiles() -> None:
    column = torch.arange(101, dtype=torch.float32)[:, None]
    assert ple_bin_edges(column, 4) == ((0.0, 25.0, 50.0, 75.0, 100.0),)


def test_ple_bin_edges_drop_duplicates_and_keep_constant_columns() -> None:
    gen = torch.Generator().manual_seed(0)
    binary = (torch.rand(500, generator=gen) < 0.2).float()  # most quantiles are 0
    constant = torch.full((500,), 0.25)
    skewed = torch.randn(500, generator=gen).exp()
    edges = ple_bin_edges(torch.stack([binary, constant, skewed], dim=1), 8)
    assert edges[0] == (0.0, 1.0)
    assert edges[1] == (0.25,)
    assert len(edges[2]) == 9 and list(edges[2]) == sorted(set(edges[2]))
    assert all(np.float32(e) == e for feature in edges for e in feature)  # float32 values
    # A network builds on them, and a constant column never divides by zero.
    net = TabularMLP(NetworkConfig(3, (), 2, 8, 1, numeric_embedding="ple", ple_edges=edges))
    x = torch.stack([binary, constant, skewed], dim=1)
    assert torch.isfinite(net(x, torch.zeros((500, 0), dtype=torch.int64))).all()


def test_ple_bin_edges_refuse_no_rows_or_bins() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        ple_bin_edges(torch.zeros((0, 2)), 4)
    with pytest.raises(ValueError, match="bins must be positive"):
        ple_bin_edges(torch.zeros((3, 2)), 0)


def test_ple_bin_edges_are_not_saved_with_the_weights() -> None:
    net = TabularMLP(config_for("ple"))
    keys = set(net.state_dict())
    assert not {k for k in keys if k.split(".")[-1] in ("left", "width", "low", "high")}
    assert "numeric_embedding.linear.weight" in keys


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["none", "periodic", "ple", "ple+periodic"])
def test_config_json_round_trip_rebuilds_the_same_network(kind: str) -> None:
    torch.manual_seed(0)
    extra = {"periodic_sigma": 0.3, "periodic_frequencies": 8, "one_hot_max_codes": 4}
    net = TabularMLP(config_for(kind, **extra))
    config = NetworkConfig.from_dict(json.loads(json.dumps(net.config.to_dict())))
    assert config == net.config
    rebuilt = TabularMLP(config)
    rebuilt.load_state_dict(net.state_dict())
    x, cat = make_inputs(50, 3, CARDINALITIES)
    x[0] = 1e4  # far outside the training range
    assert torch.equal(rebuilt(x, cat), net(x, cat))


@pytest.mark.parametrize("kind", ["periodic", "ple"])
def test_linear_term_adds_a_linear_embedding_of_each_feature(kind: str) -> None:
    torch.manual_seed(0)
    net = TabularMLP(config_for(kind, dim=5, numeric_linear=True))
    x, cat = make_inputs(11, 3, CARDINALITIES)
    assert net(x, cat).shape == (11, 3)
    module = net.numeric_embedding
    linear0 = module.linear0(x[..., None]).flatten(1)
    if kind == "ple":  # its bins start at zero weight: the embedding starts linear in x
        torch.testing.assert_close(module(x), linear0)
    else:
        angles = 2 * torch.pi * module.frequencies * x[..., None]
        periodic = module.linear(torch.cat([torch.cos(angles), torch.sin(angles)], -1))
        torch.testing.assert_close(module(x), torch.relu(periodic).flatten(1) + linear0)
    net(x, cat).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_config_written_before_linear_terms_and_ensembles_loads_as_it_was() -> None:
    # A PLE network logged before the linear term and ensembles existed: the same modules, so
    # its saved weights load and it predicts as it did.
    torch.manual_seed(0)
    old_net = TabularMLP(config_for("ple"))
    data = old_net.config.to_dict()
    del data["numeric_linear"], data["ensemble_size"]
    config = NetworkConfig.from_dict(json.loads(json.dumps(data)))
    assert (config.numeric_linear, config.ensemble_size) == (False, 1)
    loaded = TabularMLP(config)
    loaded.load_state_dict(old_net.state_dict())  # strict: no new or missing weights
    x, cat = make_inputs(20, 3, CARDINALITIES)
    assert torch.equal(loaded(x, cat), old_net(x, cat))


def test_config_written_before_numeric_embeddings_loads_without_one() -> None:
    old = {"numeric_features": 2, "cardinalities": [3], "n_classes": 2, "width": 8, "depth": 1,
           "dropout": 0.0}  # fmt: skip
    config = NetworkConfig.from_dict(old)
    assert config.numeric_embedding == "none"
    assert config.ple_edges == ()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"numeric_embedding": "fourier"}, "numeric_embedding 'fourier' is not one of"),
        ({"numeric_embedding_dim": 0}, "numeric_embedding_dim must be positive"),
        ({"periodic_frequencies": 0}, "periodic_frequencies must be positive"),
        ({"periodic_sigma": 0.0}, "periodic_sigma must be positive"),
        ({"periodic_sigma": float("nan")}, "periodic_sigma must be positive"),
        ({"ensemble_size": 0}, "ensemble_size must be positive"),
        ({"one_hot_max_codes": -1}, "one_hot_max_codes must not be negative"),
        ({"numeric_embedding": "ple"}, "ple_edges has 0 entries for 2 features"),
        ({"numeric_embedding": "ple", "ple_edges": ((0.0,), ())}, r"ple_edges\[1\] must be"),
        ({"numeric_embedding": "ple", "ple_edges": ((0.0,), (1.0, 1.0))}, r"ple_edges\[1\]"),
        ({"numeric_embedding": "ple", "ple_edges": ((0.0,), (float("inf"),))}, r"ple_edges\[1\]"),
    ],
)
def test_config_refuses_bad_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetworkConfig(2, (3,), 2, **changes)


def test_the_model_settings_resolve_to_a_network_config_for_the_data() -> None:
    x, _ = make_inputs(100, 2, ())
    model = ModelConfig(
        width=32, depth=2, dropout=0.2, numeric_embedding="ple", embedding_dim=7,
        periodic_sigma=0.2, ple_bins=5,
    )  # fmt: skip
    config = NetworkConfig.for_data(model, x, CARDINALITIES, 3)
    assert (config.numeric_features, config.cardinalities, config.n_classes) == (2, (4, 9), 3)
    assert (config.width, config.depth, config.dropout) == (32, 2, 0.2)
    assert (config.numeric_embedding, config.numeric_embedding_dim) == ("ple", 7)
    assert config.periodic_sigma == 0.2
    assert config.ple_edges == ple_bin_edges(x, 5)  # the quantiles of the given training rows
    assert config.numeric_linear  # an embedding gets the linear term
    periodic = ModelConfig(numeric_embedding="periodic", ple_bins=5, ensemble_size=4)
    periodic_config = NetworkConfig.for_data(periodic, x, (), 2)
    assert periodic_config.ple_edges == ()
    assert (periodic_config.numeric_linear, periodic_config.ensemble_size) == (True, 4)
    plain = NetworkConfig.for_data(ModelConfig(numeric_embedding="none"), x, (), 2)
    assert not plain.numeric_linear
    default = NetworkConfig.for_data(ModelConfig(), x, (), 2)  # the trainer's defaults
    assert (default.numeric_embedding, default.periodic_sigma) == ("ple+periodic", 3.0)
    assert default.ple_edges == ple_bin_edges(x, 16) and default.numeric_linear
    assert default.one_hot_max_codes == ONE_HOT_MAX_CODES  # the pair's periodic network
    assert config.one_hot_max_codes == periodic_config.one_hot_max_codes == 0  # one network


# --- a pair of networks: one PLE, one periodic ----------------------------------------------------


def test_a_pair_is_a_ple_and_a_periodic_network_side_by_side() -> None:
    torch.manual_seed(0)
    net = TabularMLP(config_for("ple+periodic", numeric_linear=True, periodic_sigma=0.5))
    assert net.pair is not None
    ple, periodic = net.pair
    assert isinstance(ple.numeric_embedding, PiecewiseLinearEmbedding)
    assert isinstance(periodic.numeric_embedding, PeriodicEmbedding)
    assert ple.config.ple_edges == net.config.ple_edges and periodic.config.periodic_sigma == 0.5
    assert ple.numeric_embedding.linear0 is not None  # both with the linear term
    x, cat = make_inputs(11, 3, CARDINALITIES)
    logits = net(x, cat)
    assert logits.shape == (11, 2, 3)  # each network's logits, as an ensemble's members'
    assert torch.equal(logits[:, 0], ple(x, cat)) and torch.equal(logits[:, 1], periodic(x, cat))
    expected = (torch.softmax(ple(x, cat), -1) + torch.softmax(periodic(x, cat), -1)) / 2
    torch.testing.assert_close(predict_proba(net, x, cat), expected)
    nn.functional.cross_entropy(logits.flatten(0, 1), torch.arange(22) % 3).backward()
    for name, param in net.named_parameters():  # both networks learn
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_the_pairs_periodic_network_takes_small_categorical_columns_one_hot() -> None:
    torch.manual_seed(0)
    net = TabularMLP(config_for("ple+periodic", one_hot_max_codes=4))  # cardinalities 4 and 9
    assert net.pair is not None
    ple, periodic = net.pair
    assert all(isinstance(m, nn.Embedding) for m in ple.embeddings)  # the PLE one embeds all
    one_hot, embedded = periodic.embeddings
    assert isinstance(one_hot, OneHot) and isinstance(embedded, nn.Embedding)
    assert embedded.embedding_dim == embedding_dim(9)  # beyond the limit: embedded
    first = next(m for m in periodic.mlp if isinstance(m, nn.Linear))
    assert first.in_features == 3 * 5 + 4 + embedding_dim(9)
    codes = torch.tensor([0, 3, 1])
    assert torch.equal(one_hot(codes), torch.eye(4)[codes])
    with pytest.raises(RuntimeError):  # a code beyond the column's, as an embedding refuses it
        one_hot(torch.tensor([4]))
    x, cat = make_inputs(9, 3, CARDINALITIES)
    nn.functional.cross_entropy(net(x, cat).flatten(0, 1), torch.arange(18) % 3).backward()
    for name, param in net.named_parameters():  # every weight still learns
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_a_pair_written_before_one_hot_columns_loads_as_it_was() -> None:
    # A pair logged when both networks embedded every column: the same modules, so its saved
    # weights load (strictly) and it predicts as it did.
    torch.manual_seed(0)
    old_net = TabularMLP(config_for("ple+periodic", numeric_linear=True))
    data = old_net.config.to_dict()
    del data["one_hot_max_codes"]
    config = NetworkConfig.from_dict(json.loads(json.dumps(data)))
    assert config.one_hot_max_codes == 0
    loaded = TabularMLP(config)
    loaded.load_state_dict(old_net.state_dict())
    x, cat = make_inputs(20, 3, CARDINALITIES)
    assert torch.equal(loaded(x, cat), old_net(x, cat))


def test_a_pair_of_ensembles_and_a_regression_pair() -> None:
    torch.manual_seed(0)
    x, cat = make_inputs(7, 3, CARDINALITIES)
    ensembles = TabularMLP(config_for("ple+periodic", ensemble_size=3))
    assert ensembles(x, cat).shape == (7, 6, 3)  # 3 members of each network
    regression = TabularMLP(replace(config_for("ple+periodic"), n_classes=1, task="regression"))
    assert regression.pair is not None
    values = [network(x, cat)[:, 0] for network in regression.pair]
    torch.testing.assert_close(predict_values(regression, x, cat), (values[0] + values[1]) / 2)


# --- torch.compile -----------------------------------------------------------------------------


def toy_split(rows: int, seed: int) -> TensorSplit:
    x, cat = make_inputs(rows, 3, CARDINALITIES)
    gen = torch.Generator().manual_seed(seed)
    target = ((x[:, 0] + torch.randn(rows, generator=gen) * 0.3) > 0).long()
    return TensorSplit(x, cat, target)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ple", "ple+periodic"])
def test_compiled_training_trains_the_plain_module(kind: str) -> None:
    torch.manual_seed(0)
    net = TabularMLP(config_for(kind, numeric=3, one_hot_max_codes=4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    wrapper = compiled(net)
    assert wrapper.config is net.config
    config = LoopConfig(lr=1e-2, batch_size=64, epochs=2, weight_decay=0.0)
    runtime = LoopRuntime(forward=wrapper)  # as the trainer's --compile trains
    outcome = fit(net, toy_split(256, 1), toy_split(128, 2), config, runtime)
    assert outcome.best_epoch >= 1
    state = net.state_dict()
    assert set(state) == set(before)  # no "_orig_mod." prefixes in what gets saved
    assert any(not torch.equal(state[k], before[k]) for k in state)  # net itself was trained
    x, cat = make_inputs(40, 3, CARDINALITIES)
    torch.testing.assert_close(predict_proba(wrapper, x, cat), predict_proba(net, x, cat))


# --- trained, logged and served ---------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> Workspace:
    root = tmp_path_factory.mktemp("embeddings")
    with workspace_env(root):
        return build_workspace(root, sample_frame)


def trained_network(workspace: Workspace, model: ModelConfig) -> TabularMLP:
    """The network of ``model`` trained for two epochs on the workspace's splits."""
    transform = dataset.load_transform(str(workspace.data))
    train, val = (load_tensors(str(workspace.data), s, transform, CPU) for s in ("train", "val"))
    cardinalities = tuple(c.cardinality for c in transform.categorical)
    torch.manual_seed(0)
    net = TabularMLP(
        NetworkConfig.for_data(model, train.numeric, cardinalities, len(transform.classes))
    )
    fit(net, train, val, LoopConfig(lr=3e-3, batch_size=256, epochs=2, weight_decay=0.0))
    return net


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "members"), [("periodic", 1), ("ple", 1), ("ple", 3), ("ple+periodic", 1)]
)
def test_served_model_predicts_what_the_trained_network_does(
    kind: str, members: int, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.activate(monkeypatch)
    model = ModelConfig(
        width=32, depth=2, numeric_embedding=kind, embedding_dim=8, ple_bins=12,
        ensemble_size=members,
    )  # fmt: skip
    net = trained_network(workspace, model)
    transform = dataset.load_transform(str(workspace.data))
    mlflow = configure_mlflow()
    with mlflow.start_run(experiment_id=ensure_experiment("embeddings")):
        info = log_served_model(net, transform, workspace.raw_test().head(5))
    raw = features_of(workspace.raw_test())
    served = load_model(info.model_uri).predict(raw)
    features = encode_features(transform, raw)
    expected = predict_proba(net, *as_tensors(features.numeric, features.categorical, CPU))
    columns = [f"proba_{label}" for label in transform.classes]
    np.testing.assert_array_equal(served[columns].to_numpy("float32"), expected.numpy())


@pytest.mark.integration
def test_trainer_flags_reach_the_logged_network(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.activate(monkeypatch)
    flags = ("--numeric-embedding", "ple", "--ple-bins", "10", "--embedding-dim", "6")
    result = train(workspace.data, "embedding-flags", *flags)
    assert {k: result["hyperparameters"][k] for k in ("numeric_embedding", "ple_bins")} == {
        "numeric_embedding": "ple",
        "ple_bins": 10,
    }
    model = load_model(result["model_path"])
    path = mlflow_client().download_artifacts(result["run_id"], "model/artifacts/network.json")
    config = NetworkConfig.from_dict(json.loads(Path(path).read_text()))
    transform = dataset.load_transform(str(workspace.data))
    train_split = load_tensors(str(workspace.data), "train", transform, CPU)
    assert config.numeric_embedding_dim == 6
    assert config.ple_edges == ple_bin_edges(train_split.numeric, 10)  # training-split quantiles
    out = model.predict(features_of(workspace.raw_test()))
    assert out.columns[0] == "prediction"
    assert np.isfinite(out.iloc[:, 1:].to_numpy("float64")).all()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--numeric-embedding", "fourier"), "argument --numeric-embedding: invalid choice"),
        (("--embedding-dim", "0"), "--embedding-dim must be positive, got 0"),
        (("--ple-bins", "-3"), "--ple-bins must be positive, got -3"),
        (("--periodic-sigma", "0"), "--periodic-sigma must be a positive number, got 0.0"),
        (("--periodic-sigma", "nan"), "--periodic-sigma must be a positive number, got nan"),
        (("--periodic-sigma", "inf"), "--periodic-sigma must be a positive number, got inf"),
    ],
)
def test_bad_embedding_flags_are_refused_naming_the_flag(
    flags: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--data-path", str(tmp_path), "--experiment-name", "x", *flags]
    assert main(argv) != 0
    assert message in capsys.readouterr().err
    assert not xcom_path().exists()


@pytest.mark.slow
@pytest.mark.integration
def test_compiled_training_run_logs_the_plain_weights(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.activate(monkeypatch)
    flags = ("--compile", "--epochs", "1", "--numeric-embedding", "periodic")
    result = train(workspace.data, "compiled", *flags)
    assert result["hyperparameters"]["compile"] is True
    path = mlflow_client().download_artifacts(result["run_id"], "model/artifacts")
    weights = load_file(str(Path(path) / "weights.safetensors"))
    assert "numeric_embedding.frequencies" in weights
    assert not [k for k in weights if k.startswith("_orig_mod")]
    out = load_model(result["model_path"]).predict(features_of(workspace.raw_test()))
    assert np.isfinite(out.iloc[:, 1:].to_numpy("float64")).all()


@pytest.mark.slow
@pytest.mark.integration
def test_compile_without_a_compiler_fails_naming_the_flag(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch._inductor.config as inductor

    workspace.activate(monkeypatch)
    monkeypatch.setattr(inductor.cpp, "cxx", (None, "no-such-c++-compiler"))
    monkeypatch.setattr(inductor, "fx_graph_cache", False)  # a cached graph needs no compiler
    argv = ["--data-path", str(workspace.data), "--experiment-name", "no-compiler", "--compile"]
    assert main([*argv, "--epochs", "1", "--width", "8", "--depth", "1", "--device", "cpu"]) != 0
    assert "--compile: torch.compile failed" in capsys.readouterr().err
    assert not xcom_path().exists()
