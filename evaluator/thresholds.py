"""The promotion gate's thresholds (the evaluator's gate flags). It imports nothing heavy, so
that the evaluator's parser (and ``--help``) is built without the scoring stack;
``evaluator.gate`` decides with them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """What a candidate must clear (the evaluator's flags)."""

    min_accuracy: float = 0.0
    min_improvement: float = 0.0
    slice_tolerance: float = 0.05
    calibration_tolerance: float = 0.02
