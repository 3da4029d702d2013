"""The trainer's numeric embeddings against the maintained implementation of the same method,
``rtdl_num_embeddings`` (by the authors of the embeddings), same shapes and weights, one run:

* PLE with a linear term: ours (``PiecewiseLinearEmbedding(linear=True)``) against the
  library's ``PiecewiseLinearEmbeddings(version="B", activation=False)``;
* periodic with a linear term: ours (``PeriodicEmbedding(linear=True)``) against the library's
  ``PeriodicEmbeddings(lite=False)`` plus its ``LinearEmbeddings``.

Each pair is first checked to compute the same function (the library's module takes ours'
weights; the largest difference of their outputs is reported), then timed: forward and backward
of a training batch, best of several repeats. ``python -m bench.embedding_implementations
[--rows N --features F --device D]`` prints a table and, with ``--json``, the numbers as JSON.
``rtdl_num_embeddings`` comes with the ``dev`` extra.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import rtdl_num_embeddings as rtdl
import torch
from torch import nn

from tabular_model.network import (
    ModelConfig,
    NetworkConfig,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
    ple_bin_edges,
)

# The trainer's defaults.
BINS, DIM, SIGMA = ModelConfig.ple_bins, ModelConfig.embedding_dim, ModelConfig.periodic_sigma
FREQUENCIES = NetworkConfig.periodic_frequencies


class LibraryPeriodic(nn.Module):
    """The library's periodic embedding plus its linear embedding, summed, as ours with a linear
    term; [batch, F] → [batch, F * dim] like ours."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.periodic = rtdl.PeriodicEmbeddings(
            features, DIM, n_frequencies=FREQUENCIES, frequency_init_scale=SIGMA, lite=False
        )
        self.linear0 = rtdl.LinearEmbeddings(features, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.periodic(x) + self.linear0(x)).flatten(1)


class LibraryPLE(nn.Module):
    """The library's PLE embedding, version "B" (a linear term, bin weights from zero);
    [batch, F] → [batch, F * dim] like ours."""

    def __init__(self, edges: tuple[tuple[float, ...], ...]) -> None:
        super().__init__()
        bins = [torch.tensor(feature) for feature in edges]
        self.ple = rtdl.PiecewiseLinearEmbeddings(bins, DIM, activation=False, version="B")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ple(x).flatten(1)  # type: ignore[no-any-return]


@torch.no_grad()
def library_periodic(ours: PeriodicEmbedding) -> LibraryPeriodic:
    """The library's periodic embedding holding ``ours``' weights."""
    assert ours.linear0 is not None
    theirs = LibraryPeriodic(ours.frequencies.shape[0])
    theirs.periodic.periodic.weight.copy_(ours.frequencies)
    theirs.periodic.linear.weight.copy_(ours.linear.weight)
    theirs.periodic.linear.bias.copy_(ours.linear.bias)
    theirs.linear0.weight.copy_(ours.linear0.weight[:, 0])
    theirs.linear0.bias.copy_(ours.linear0.bias)
    return theirs


@torch.no_grad()
def library_ple(ours: PiecewiseLinearEmbedding, edges: tuple[tuple[float, ...], ...]) -> LibraryPLE:
    """The library's PLE embedding holding ``ours``' weights. The library has no bias on the
    bins' layer (ours starts it at zero: the sum of the two biases goes to its linear term) and
    keeps each feature's last bin in the last column, padding before it (ours pads after)."""
    assert ours.linear0 is not None
    theirs = LibraryPLE(edges)
    ple = theirs.ple
    assert ple.linear0 is not None
    ple.linear0.weight.copy_(ours.linear0.weight[:, 0])
    ple.linear0.bias.copy_(ours.linear0.bias + ours.linear.bias)
    ple.linear.weight.zero_()
    width = ple.linear.weight.shape[1]
    for f, feature in enumerate(edges):
        bins = len(feature) - 1
        ple.linear.weight[f, : bins - 1] = ours.linear.weight[f, : bins - 1]
        ple.linear.weight[f, width - 1] = ours.linear.weight[f, bins - 1]
    return theirs


def quantile_data(rows: int, features: int, seed: int = 0) -> torch.Tensor:
    """Skewed and heavy-tailed columns, as tabular numeric data often is."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, features, generator=g).exp() - 1.0


def timed_step(module: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Best seconds of one forward and backward over ``repeats`` (after a warm-up)."""
    best = float("inf")
    for i in range(repeats + 1):
        module.zero_grad(set_to_none=True)
        if x.is_cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        module(x).square().mean().backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - started)
    return best


@dataclass(frozen=True)
class Comparison:
    embedding: str
    max_abs_difference: float  # of the two outputs on the same batch
    ours_ms: float  # one forward and backward
    library_ms: float


def compare(rows: int, features: int, device: torch.device, repeats: int) -> list[Comparison]:
    train = quantile_data(4096, features)
    edges = ple_bin_edges(train, BINS)
    torch.manual_seed(0)
    ours_ple = PiecewiseLinearEmbedding(edges, DIM, linear=True)
    nn.init.normal_(ours_ple.linear.weight, std=0.1)  # trained-like bin weights, not zeros
    ours_periodic = PeriodicEmbedding(features, FREQUENCIES, DIM, SIGMA, linear=True)
    pairs = [
        ("ple, linear term", ours_ple, library_ple(ours_ple, edges)),
        ("periodic, linear term", ours_periodic, library_periodic(ours_periodic)),
    ]
    x = quantile_data(rows, features, seed=1).to(device)
    results = []
    for name, ours, theirs in pairs:
        ours, theirs = ours.to(device), theirs.to(device)
        with torch.no_grad():
            difference = float((ours(x) - theirs(x)).abs().max())
        ours_s, theirs_s = (timed_step(m, x, repeats) for m in (ours, theirs))
        results.append(Comparison(name, difference, 1e3 * ours_s, 1e3 * theirs_s))
    return results


def markdown(results: Sequence[Comparison]) -> str:
    lines = [
        "| embedding | max abs difference | ours (ms) | rtdl_num_embeddings (ms) | ours / theirs |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.embedding} | {r.max_abs_difference:.1e} | {r.ours_ms:.2f} | "
            f"{r.library_ms:.2f} | {r.ours_ms / r.library_ms:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024, help="rows per batch")
    parser.add_argument("--features", type=int, default=16, help="numeric features")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = compare(args.rows, args.features, torch.device(args.device), args.repeats)
    print(
        f"{platform.machine()}, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"rtdl_num_embeddings {importlib.metadata.version('rtdl_num_embeddings')}; "
        f"batch {args.rows} x {args.features} features, device {args.device}"
    )
    print(markdown(results))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
