"""A progress bar over the steps of an epoch, for a person watching a terminal.

Shown only when stdout is a terminal (pods and CI logs keep the one line per epoch) and only by
rank 0. The bar counts steps; it never reads the loss, so it adds no host synchronisation."""

from __future__ import annotations

import sys
from typing import Any


def on_terminal() -> bool:
    return sys.stdout.isatty()


def epoch_bar(enabled: bool, epoch: int, epochs: int, total: int, done: int) -> Any:
    """A tqdm bar for ``total`` steps starting at ``done``, or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        desc=f"epoch {epoch}/{epochs}",
        unit="step",
        leave=False,
        file=sys.stdout,
        mininterval=0.5,
        dynamic_ncols=True,
    )
