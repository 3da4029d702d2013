"""The limits of the data checks (the validator's threshold flags). It imports nothing heavy,
so that the validator's parser (and ``--help``) is built without pandas; ``validator.checks``
checks with them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """Limits of the checks; rates and shares are fractions of rows (0..1)."""

    min_rows: int = 10
    null_rate_warning: float = 0.1  # rise of a column's null rate over the schema's
    null_rate_error: float = 0.5
    invalid_share_error: float = 0.1  # share of rows out of range or with unseen categories
    # The schema's range is what one sample showed: a fresh sample of an unbounded column has
    # new extremes. Values are out of range beyond this share of the range's width past either end.
    range_margin: float = 0.1
    label_shift_warning: float = 0.1  # largest change of a class's share of rows
    label_shift_error: float = 0.3
    psi_warning: float = 0.1  # population stability index of a column against the reference
    psi_error: float = 0.25
