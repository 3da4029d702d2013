"""Deterministic train/val/test split."""

from __future__ import annotations

import numpy as np


def split_indices(
    rows: int, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Row indices per split from a seeded permutation; the same inputs give the same split."""
    order = np.random.default_rng(seed).permutation(rows)
    n_test = round(rows * test_fraction)
    n_val = round(rows * val_fraction)
    return {
        "test": np.sort(order[:n_test]),
        "val": np.sort(order[n_test : n_test + n_val]),
        "train": np.sort(order[n_test + n_val :]),
    }
