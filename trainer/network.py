"""The model: categorical embeddings concatenated with numeric features, then an MLP."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class NetworkConfig:
    numeric_features: int
    cardinalities: tuple[int, ...]  # codes per categorical column, including the unknown code 0
    n_classes: int
    width: int = 256
    depth: int = 3
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cardinalities": list(self.cardinalities)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        return cls(**{**data, "cardinalities": tuple(data["cardinalities"])})


def embedding_dim(cardinality: int) -> int:
    """A common rule of thumb: grows slowly with the vocabulary, capped at 32."""
    return int(min(32, max(2, round(1.6 * cardinality**0.56))))


class TabularMLP(nn.Module):
    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, embedding_dim(card)) for card in config.cardinalities
        )
        width_in = config.numeric_features + sum(embedding_dim(c) for c in config.cardinalities)
        layers: list[nn.Module] = []
        for _ in range(config.depth):
            layers += [nn.Linear(width_in, config.width), nn.ReLU(), nn.Dropout(config.dropout)]
            width_in = config.width
        layers.append(nn.Linear(width_in, config.n_classes))
        self.mlp = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Logits [batch, n_classes] from float [batch, F] and int64 codes [batch, C]."""
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat(parts, dim=1))  # type: ignore[no-any-return]


def predict_proba(
    net: TabularMLP, numeric: torch.Tensor, categorical: torch.Tensor, batch_size: int = 65536
) -> torch.Tensor:
    """Class probabilities (float32, on the inputs' device) in large inference-mode batches."""
    was_training = net.training
    net.eval()
    with torch.inference_mode():
        chunks = [
            torch.softmax(
                net(numeric[i : i + batch_size], categorical[i : i + batch_size]).float(), 1
            )
            for i in range(0, numeric.shape[0], batch_size)
        ]
    net.train(was_training)
    if not chunks:
        return torch.zeros((0, net.config.n_classes), device=numeric.device)
    return torch.cat(chunks)


def as_tensors(
    numeric: np.ndarray, categorical: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(np.ascontiguousarray(numeric, dtype=np.float32)).to(device),
        torch.from_numpy(np.ascontiguousarray(categorical, dtype=np.int64)).to(device),
    )
