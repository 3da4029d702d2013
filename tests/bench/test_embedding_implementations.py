"""bench.embedding_implementations: the trainer's hand-written PLE and periodic embeddings
compute what ``rtdl_num_embeddings`` (the maintained implementation) computes with the same
weights, padding of features with fewer bins and values beyond the training range included; a
tiny run reports both."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bench.embedding_implementations import (
    DIM,
    FREQUENCIES,
    SIGMA,
    library_periodic,
    library_ple,
    main,
)
from tabular_model.network import PeriodicEmbedding, PiecewiseLinearEmbedding, ple_bin_edges


def mixed_columns(rows: int, seed: int) -> torch.Tensor:
    """A skewed column, a normal one and one with three values (fewer bins: padded)."""
    g = torch.Generator().manual_seed(seed)
    skewed = torch.randn(rows, generator=g).exp()
    normal = torch.randn(rows, generator=g)
    few = torch.randint(0, 3, (rows,), generator=g).float()
    return torch.stack([skewed, normal, few], 1)


def test_our_ple_is_the_librarys_version_b() -> None:
    edges = ple_bin_edges(mixed_columns(500, 0), 8)
    assert len({len(e) for e in edges}) > 1  # some features have fewer bins
    torch.manual_seed(0)
    ours = PiecewiseLinearEmbedding(edges, DIM, linear=True)
    nn.init.normal_(ours.linear.weight, std=0.3)  # as if trained: the bins' part counts
    nn.init.normal_(ours.linear.bias, std=0.3)
    theirs = library_ple(ours, edges)
    x = mixed_columns(200, 1) * 3 - 1  # within and beyond the training range
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_our_periodic_embedding_is_the_librarys_plus_its_linear_embedding() -> None:
    torch.manual_seed(0)
    ours = PeriodicEmbedding(3, FREQUENCIES, DIM, SIGMA, linear=True)
    theirs = library_periodic(ours)
    x = mixed_columns(200, 2)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_a_different_weight_is_told_apart() -> None:
    # The comparison can fail: the library's module with one weight changed differs.
    torch.manual_seed(0)
    ours = PeriodicEmbedding(3, FREQUENCIES, DIM, SIGMA, linear=True)
    theirs = library_periodic(ours)
    with torch.no_grad():
        theirs.linear0.bias[1, 0] += 0.5
    x = mixed_columns(20, 2)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_a_tiny_run_reports_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rows", "64", "--features", "4", "--repeats", "1", "--json"]) == 0
    out = capsys.readouterr().out
    results = json.loads(out[out.index("[") :])
    assert [r["embedding"] for r in results] == ["ple, linear term", "periodic, linear term"]
    assert all(r["max_abs_difference"] < 1e-4 and r["ours_ms"] > 0 for r in results)
