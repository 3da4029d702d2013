"""The model: categorical embeddings concatenated with the numeric features (raw, or each one
embedded), then an MLP.

Numeric feature embeddings follow Gorishniy et al., "On Embeddings for Numerical Features in
Tabular Deep Learning" (2022): ``periodic`` is their PLR (trainable frequencies, cos/sin, then a
linear layer and ReLU per feature); ``ple`` is their piecewise-linear encoding over per-feature
bin edges taken from training-split quantiles, then a linear layer and ReLU per feature. Both are
vectorised over features: one batched matmul, no Python loop per feature. With a linear term
(``NetworkConfig.numeric_linear``, as ``rtdl_num_embeddings``' version "B" of PLE) each
feature's embedding also gets a linear function of the feature: PLE's bin weights then start at
zero, without the ReLU, so training starts from a plain linear embedding and learns the bins'
corrections; the periodic embedding keeps its ReLU and adds the linear term."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from tabular_model.model_config import EMBEDDING_PAIR
from tabular_model.model_config import NUMERIC_EMBEDDINGS as NUMERIC_EMBEDDINGS
from tabular_model.model_config import ModelConfig as ModelConfig
from tabular_model.model_config import SettingError as SettingError
from tabular_model.model_config import check_setting as check_setting
from tabular_model.transform import TASKS


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to rebuild the network before loading its weights (JSON-serialisable):
    the data's shapes and the resolved model settings. Its defaults are what a config written
    before a field existed means, so they stay as they are whatever ``ModelConfig`` defaults to.

    ``ple_edges`` holds, per numeric feature, the strictly increasing bin edges of the
    piecewise-linear encoding (only with ``numeric_embedding`` ``ple`` or ``ple+periodic``).
    ``numeric_linear`` adds a linear embedding of each raw feature to its numeric embedding
    (set for every new network with one; False, the embedding alone, is what a config written
    before it means).
    ``ensemble_size`` > 1 makes the network a TabM-mini ensemble, ``numeric_embedding``
    ``ple+periodic`` a pair of networks (see ``TabularMLP``).
    ``one_hot_max_codes``: a categorical column with at most this many codes enters the MLP
    one-hot instead of through a learned embedding; in a pair, the periodic network's columns
    (the PLE one keeps its embeddings). 0, every column embedded, is what a config written
    before it means.
    ``task`` is ``classification`` (``n_classes`` outputs) or ``regression`` (one output).
    ``numeric_bounds``, per numeric feature, the least and greatest value of the training split:
    the network clamps its numeric inputs to them, so a row beyond anything seen in training is
    scored as the nearest seen one, as a tree ensemble scores it, instead of being extrapolated by
    the linear parts (a regression prediction a hundred times the largest target, otherwise);
    empty, no clamping, is what a config written before it means."""

    numeric_features: int
    cardinalities: tuple[int, ...]  # codes per categorical column, including the unknown code 0
    n_classes: int
    width: int = 256
    depth: int = 3
    dropout: float = 0.1
    numeric_embedding: str = "none"
    numeric_embedding_dim: int = 16
    periodic_sigma: float = 0.1
    periodic_frequencies: int = 48
    ple_edges: tuple[tuple[float, ...], ...] = ()
    numeric_linear: bool = False
    ensemble_size: int = 1
    task: str = "classification"
    numeric_bounds: tuple[tuple[float, float], ...] = ()
    one_hot_max_codes: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r} is not one of {list(TASKS)}")
        if self.task == "regression" and self.n_classes != 1:
            raise ValueError(f"a regression network has one output, not {self.n_classes}")
        if self.numeric_embedding not in NUMERIC_EMBEDDINGS:
            raise ValueError(
                f"numeric_embedding {self.numeric_embedding!r} is not one of {NUMERIC_EMBEDDINGS}"
            )
        for name in ("numeric_embedding_dim", "periodic_frequencies", "ensemble_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.one_hot_max_codes < 0:
            raise ValueError(
                f"one_hot_max_codes must not be negative, got {self.one_hot_max_codes}"
            )
        if not (math.isfinite(self.periodic_sigma) and self.periodic_sigma > 0):
            raise ValueError(f"periodic_sigma must be positive, got {self.periodic_sigma}")
        if self.numeric_embedding in ("ple", EMBEDDING_PAIR):
            check_ple_edges(self.ple_edges, self.numeric_features)
        if self.numeric_bounds:
            check_numeric_bounds(self.numeric_bounds, self.numeric_features)

    @classmethod
    def for_data(
        cls,
        model: ModelConfig,
        train_numeric: torch.Tensor,
        cardinalities: tuple[int, ...],
        n_classes: int,
        task: str = "classification",
    ) -> NetworkConfig:
        """The network ``model`` describes, shaped for the data: ``train_numeric`` is the
        training split's encoded numeric tensor [rows, F] (F numeric features; with ``ple``, the
        bin edges are its quantiles), ``cardinalities`` the codes per categorical column and
        ``n_classes`` the number of labels (ignored for regression: one output)."""
        ple = model.numeric_embedding in ("ple", EMBEDDING_PAIR)
        return cls(
            numeric_features=int(train_numeric.shape[1]),
            cardinalities=cardinalities,
            n_classes=1 if task == "regression" else n_classes,
            task=task,
            width=model.width,
            depth=model.depth,
            dropout=model.dropout,
            numeric_embedding=model.numeric_embedding,
            numeric_embedding_dim=model.embedding_dim,
            periodic_sigma=model.periodic_sigma,
            ple_edges=ple_bin_edges(train_numeric, model.ple_bins) if ple else (),
            numeric_linear=model.numeric_embedding != "none",
            ensemble_size=model.ensemble_size,
            numeric_bounds=numeric_bounds(train_numeric),
            one_hot_max_codes=ONE_HOT_MAX_CODES if model.numeric_embedding == EMBEDDING_PAIR else 0,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "cardinalities": list(self.cardinalities),
            "ple_edges": [list(edges) for edges in self.ple_edges],
            "numeric_bounds": [list(bounds) for bounds in self.numeric_bounds],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        """Inverse of ``to_dict``; a config written before numeric embeddings existed loads
        with none."""
        edges = tuple(tuple(float(e) for e in feature) for feature in data.get("ple_edges", ()))
        bounds = tuple((float(low), float(high)) for low, high in data.get("numeric_bounds", ()))
        return cls(
            **{
                **data,
                "cardinalities": tuple(data["cardinalities"]),
                "ple_edges": edges,
                "numeric_bounds": bounds,
            }
        )


def numeric_bounds(train_numeric: torch.Tensor) -> tuple[tuple[float, float], ...]:
    """Per numeric feature, the least and greatest value of the training split."""
    if train_numeric.shape[0] == 0:
        return ()
    low, high = train_numeric.amin(0).tolist(), train_numeric.amax(0).tolist()
    return tuple((float(a), float(b)) for a, b in zip(low, high, strict=True))


def check_numeric_bounds(bounds: tuple[tuple[float, float], ...], numeric_features: int) -> None:
    if len(bounds) != numeric_features:
        raise ValueError(f"numeric_bounds has {len(bounds)} features, not {numeric_features}")
    for i, (low, high) in enumerate(bounds):
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"numeric_bounds of feature {i} are not finite and ordered")


def check_ple_edges(edges: tuple[tuple[float, ...], ...], numeric_features: int) -> None:
    """Raise ValueError unless there is one non-empty, finite, strictly increasing edge list per
    numeric feature."""
    if len(edges) != numeric_features:
        raise ValueError(f"ple_edges has {len(edges)} entries for {numeric_features} features")
    for i, feature in enumerate(edges):
        values = np.asarray(feature, dtype="float64")
        if values.size == 0 or not np.isfinite(values).all() or np.any(np.diff(values) <= 0):
            raise ValueError(
                f"ple_edges[{i}] must be non-empty, finite and strictly increasing: {feature}"
            )


def ple_bin_edges(numeric: torch.Tensor, bins: int) -> tuple[tuple[float, ...], ...]:
    """Per-feature bin edges for the piecewise-linear encoding: the ``bins + 1`` quantiles of
    each column of the (training) tensor [rows, F], rounded to float32 (the dtype they are used
    in) and deduplicated, so a column with few distinct values gets fewer bins and a constant
    column a single edge."""
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    values = numeric.detach().cpu().numpy()
    if values.shape[0] == 0:
        raise ValueError("bin edges need at least one row")
    quantiles = np.quantile(values.astype("float64"), np.linspace(0.0, 1.0, bins + 1), axis=0)
    quantiles = quantiles.astype("float32")
    return tuple(
        tuple(float(e) for e in np.unique(quantiles[:, j])) for j in range(values.shape[1])
    )


def embedding_dim(cardinality: int) -> int:
    """A common rule of thumb: grows slowly with the vocabulary, capped at 32."""
    return int(min(32, max(2, round(1.6 * cardinality**0.56))))


# The pair's periodic network takes categorical columns of at most this many codes one-hot
# (larger ones embedded, so that a wide vocabulary does not widen the first layer without
# bound). One-hot there and learned embeddings in the PLE network made the two networks differ
# in how they see categories too, which gained on the categorical columns of the model quality
# panel (docs/BENCHMARKS.md).
ONE_HOT_MAX_CODES = 128


class OneHot(nn.Module):
    """Codes [batch] → their one-hot float rows [batch, cardinality] (no weights)."""

    def __init__(self, cardinality: int) -> None:
        super().__init__()
        self.cardinality = cardinality

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(codes, self.cardinality).float()


def categorical_encoding(cardinality: int, one_hot_max_codes: int) -> tuple[nn.Module, int]:
    """How one categorical column enters the MLP, and the width it takes there."""
    if cardinality <= one_hot_max_codes:
        return OneHot(cardinality), cardinality
    dim = embedding_dim(cardinality)
    return nn.Embedding(cardinality, dim), dim


class PerFeatureLinear(nn.Module):
    """A separate linear layer for each feature, applied to all at once:
    [batch, F, d_in] → [batch, F, d_out], initialised like ``nn.Linear``."""

    def __init__(self, features: int, d_in: int, d_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(features, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(features, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Batched over features: [F, batch, d_in] @ [F, d_in, d_out] (one bmm, bf16 under autocast).
        return torch.bmm(x.transpose(0, 1), self.weight).transpose(0, 1) + self.bias


class PeriodicEmbedding(nn.Module):
    """PLR: x → ReLU(Linear_f([cos(2π c_f x), sin(2π c_f x)])) per feature f, with ``frequencies``
    trainable c_f initialised N(0, sigma) truncated at 3 sigma (``linear``: plus Linear0_f(x)).
    [batch, F] → [batch, F * dim]."""

    def __init__(
        self, features: int, frequencies: int, dim: int, sigma: float, linear: bool = False
    ) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(
            nn.init.trunc_normal_(
                torch.empty(features, frequencies), 0.0, sigma, -3 * sigma, 3 * sigma
            )
        )
        self.linear = PerFeatureLinear(features, 2 * frequencies, dim)
        self.linear0 = PerFeatureLinear(features, 1, dim) if linear else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Angles in float32 even under autocast: cos/sin of large bf16 angles lose their phase.
        angles = 2 * math.pi * self.frequencies * x.float()[..., None]
        encoded = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        out = torch.relu(self.linear(encoded))
        if self.linear0 is not None:
            out = out + self.linear0(x.float()[..., None])
        return out.flatten(1)


class PiecewiseLinearEmbedding(nn.Module):
    """PLE then ReLU(Linear_f) per feature: [batch, F] → [batch, F * dim]; with ``linear``,
    ``Linear0_f(x) + Linear_f(PLE(x))`` instead, ``Linear_f`` initialised to zero.

    Bin t of feature f with edges e_0 < ... < e_n encodes (x - e_t) / (e_{t+1} - e_t) clamped to
    [0, 1]; the first bin is open below and the last open above, so values outside the training
    range still move the encoding. Features with fewer bins are padded with bins clamped to 0; a
    constant column (one edge e_0) encodes x - e_0."""

    left: torch.Tensor  # [F, bins] left edge of each bin
    width: torch.Tensor  # [F, bins] its width (1 for padding bins)
    low: torch.Tensor  # [F, bins] clamp bounds: -inf for the first bin, 0 otherwise
    high: torch.Tensor  # [F, bins] +inf for the last real bin, 1 otherwise, 0 for padding

    def __init__(
        self, edges: tuple[tuple[float, ...], ...], dim: int, linear: bool = False
    ) -> None:
        super().__init__()
        bins = max([len(e) - 1 for e in edges] + [1])
        shape = (len(edges), bins)
        left, width = torch.zeros(shape), torch.ones(shape)
        low, high = torch.zeros(shape), torch.zeros(shape)  # padding bins: always 0
        for f, feature in enumerate(edges):  # once, at construction
            points = torch.tensor(feature, dtype=torch.float64)
            n = max(1, len(feature) - 1)  # a constant column: one bin of width 1 at its value
            left[f, :n], high[f, :n] = points[:n], 1.0
            if len(feature) > 1:  # widths in float64: distinct float32 edges never give 0
                width[f, :n] = points.diff()
            low[f, 0], high[f, n - 1] = -math.inf, math.inf
        for name, tensor in (("left", left), ("width", width), ("low", low), ("high", high)):
            # Rebuilt from the config on load, so they stay out of the saved weights.
            self.register_buffer(name, tensor, persistent=False)
        self.linear = PerFeatureLinear(len(edges), bins, dim)
        self.linear0: PerFeatureLinear | None = None
        if linear:
            self.linear0 = PerFeatureLinear(len(edges), 1, dim)
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The piecewise-linear encoding [batch, F, bins] of float [batch, F]."""
        scaled = (x.float()[..., None] - self.left) / self.width
        return torch.clamp(scaled, min=self.low, max=self.high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.linear0 is None:
            return torch.relu(self.linear(self.encode(x))).flatten(1)
        out = self.linear0(x.float()[..., None]) + self.linear(self.encode(x))
        return out.flatten(1)


def numeric_embedding(config: NetworkConfig) -> tuple[nn.Module, int]:
    """The numeric part of the network and the width it outputs."""
    features, dim = config.numeric_features, config.numeric_embedding_dim
    if config.numeric_embedding == "periodic":
        module: nn.Module = PeriodicEmbedding(
            features,
            config.periodic_frequencies,
            dim,
            config.periodic_sigma,
            config.numeric_linear,
        )
        return module, features * dim
    if config.numeric_embedding == "ple":
        module = PiecewiseLinearEmbedding(config.ple_edges, dim, config.numeric_linear)
        return module, features * dim
    return nn.Identity(), features


class TabularMLP(nn.Module):
    """With ``numeric_embedding`` ``ple+periodic``, two networks side by side, one with each
    numeric embedding (each as ``ple`` or ``periodic`` alone: own categorical embeddings, own
    MLP), trained together on the mean of their losses; the prediction is the mean of their
    probabilities (regression: of their values). The two embeddings suit different data (PLE
    digits and image segments, periodic ones the census and the police stops of the panel), and
    their average beat each alone. The periodic network takes the categorical columns one-hot
    (see ``NetworkConfig.one_hot_max_codes``), the PLE network through learned embeddings.

    With ``ensemble_size`` k > 1, k members in one network, as TabM-mini (Gorishniy et al.,
    "TabM: Advancing Tabular Deep Learning with Parameter-Efficient Ensembling", 2024): each
    member scales the MLP's input by its own vector (initialised to random signs), shares the
    hidden layers and has its own output layer; the logits are [batch, k, classes], each member
    is trained on its own loss, and the prediction is the mean of the members' probabilities
    (``predict_proba``)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.pair: nn.ModuleList | None = None
        if config.numeric_embedding == EMBEDDING_PAIR:
            self.pair = nn.ModuleList(
                TabularMLP(
                    replace(
                        config,
                        numeric_embedding=embedding,
                        one_hot_max_codes=config.one_hot_max_codes
                        if embedding == "periodic"
                        else 0,
                    )
                )
                for embedding in EMBEDDING_PAIR.split("+")
            )
            return
        encodings = [
            categorical_encoding(c, config.one_hot_max_codes) for c in config.cardinalities
        ]
        # Each column's encoding (named for the saved weights' keys: a one-hot column has none).
        self.embeddings = nn.ModuleList(module for module, _ in encodings)
        # Built after the categorical embeddings and before the MLP, so that with no numeric
        # embedding a seed initialises exactly the same weights as before it existed.
        self.numeric_embedding, numeric_width = numeric_embedding(config)
        # Not parameters, and not in the state_dict: the bounds are the config's.
        low, high = zip(*config.numeric_bounds, strict=True) if config.numeric_bounds else ((), ())
        self.numeric_low: torch.Tensor
        self.numeric_high: torch.Tensor
        self.register_buffer("numeric_low", torch.tensor(low), persistent=False)
        self.register_buffer("numeric_high", torch.tensor(high), persistent=False)
        width_in = numeric_width + sum(width for _, width in encodings)
        k = config.ensemble_size
        layers: list[nn.Module] = []
        for _ in range(config.depth):
            layers += [nn.Linear(width_in, config.width), nn.ReLU(), nn.Dropout(config.dropout)]
            width_in = config.width
        if k == 1:  # a single network: the same modules (and weights for a seed) as before
            layers.append(nn.Linear(width_in, config.n_classes))
        self.mlp = nn.Sequential(*layers)
        if k > 1:
            features_in = cast(nn.Linear, layers[0]).in_features if layers else width_in
            signs = torch.randint(0, 2, (k, features_in)).float() * 2 - 1
            self.member_scale = nn.Parameter(signs)
            self.heads = PerFeatureLinear(k, width_in, config.n_classes)

    def networks(self) -> list[tuple[str, TabularMLP]]:
        """The networks whose weights can be chosen apart, with their state_dict key prefix:
        a pair's two, or this one alone."""
        if self.pair is None:
            return [("", self)]
        return [(f"pair.{i}.", cast(TabularMLP, network)) for i, network in enumerate(self.pair)]

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Logits [batch, n_classes] (an ensemble: [batch, k, n_classes]) from float [batch, F]
        and int64 codes [batch, C]. A pair of networks gives [batch, 2 * members, n_classes]:
        its networks' outputs side by side, each network's members as one more member."""
        if self.pair is not None:
            outputs = [network(numeric, categorical) for network in self.pair]
            if outputs[0].dim() == 2:
                return torch.stack(outputs, dim=1)
            return torch.cat(outputs, dim=1)
        if self.config.numeric_bounds:
            numeric = torch.minimum(torch.maximum(numeric, self.numeric_low), self.numeric_high)
        parts = [self.numeric_embedding(numeric)]
        parts += [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        x = torch.cat(parts, dim=1)
        if self.config.ensemble_size == 1:
            return self.mlp(x)  # type: ignore[no-any-return]
        hidden = self.mlp(x[:, None, :] * self.member_scale)  # [batch, k, width]
        return self.heads(hidden)  # type: ignore[no-any-return]


def member_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities [batch, classes] of logits [batch, classes] or, from an ensemble,
    [batch, k, classes] (the mean of the members' probabilities)."""
    probabilities = torch.softmax(logits.float(), -1)
    return probabilities.mean(1) if probabilities.dim() == 3 else probabilities


def compiled(net: TabularMLP) -> TabularMLP:
    """``torch.compile`` of ``net`` for training. The wrapper shares ``net``'s parameters, so
    training it trains ``net``; save and serve ``net`` itself (the wrapper's state_dict keys
    carry an ``_orig_mod.`` prefix). Its attributes (``config``) are those of ``net``."""
    return cast(TabularMLP, torch.compile(net))


def predict_proba(
    net: TabularMLP, numeric: torch.Tensor, categorical: torch.Tensor, batch_size: int = 65536
) -> torch.Tensor:
    """Class probabilities (float32, on the inputs' device) in large inference-mode batches."""
    empty = (0, net.config.n_classes)
    return batched_inference(net, numeric, categorical, batch_size, member_probabilities, empty)


def member_values(outputs: torch.Tensor) -> torch.Tensor:
    """Regression predictions [batch] of outputs [batch, 1] or, from an ensemble, [batch, k, 1]
    (the mean of the members' predictions)."""
    values = outputs.float()[..., 0]
    return values.mean(1) if values.dim() == 2 else values


def predict_values(
    net: TabularMLP, numeric: torch.Tensor, categorical: torch.Tensor, batch_size: int = 65536
) -> torch.Tensor:
    """A regression network's predictions [rows] (float32, in standardised target units, on the
    inputs' device) in large inference-mode batches."""
    return batched_inference(net, numeric, categorical, batch_size, member_values, (0,))


def batched_inference(
    net: TabularMLP,
    numeric: torch.Tensor,
    categorical: torch.Tensor,
    batch_size: int,
    combine: Callable[[torch.Tensor], torch.Tensor],
    empty: tuple[int, ...],
) -> torch.Tensor:
    """``combine`` of the net's outputs, batch by batch in inference mode, concatenated."""
    was_training = net.training
    net.eval()
    with torch.inference_mode():
        chunks = [
            combine(net(numeric[i : i + batch_size], categorical[i : i + batch_size]))
            for i in range(0, numeric.shape[0], batch_size)
        ]
    net.train(was_training)
    if not chunks:
        return torch.zeros(empty, device=numeric.device)
    return torch.cat(chunks)


def as_tensors(
    numeric: np.ndarray, categorical: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(np.ascontiguousarray(numeric, dtype=np.float32)).to(device),
        torch.from_numpy(np.ascontiguousarray(categorical, dtype=np.int64)).to(device),
    )
