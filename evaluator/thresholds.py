"""The promotion gate's thresholds (the evaluator's gate flags). It imports nothing heavy, so
that the evaluator's parser (and ``--help``) is built without the scoring stack;
``evaluator.gate`` decides with them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """What a candidate must clear (the evaluator's flags). Each task reads its own: the floor
    is ``min_accuracy`` (classification) or ``min_r2`` (regression); ``min_improvement`` is in
    accuracy points (classification) or a fraction of the champion's RMSE (regression);
    ``slice_tolerance`` is in accuracy points or a fraction of the champion's worst slice RMSE;
    ``calibration_tolerance`` is for classification only."""

    min_accuracy: float = 0.0
    min_improvement: float = 0.0
    slice_tolerance: float = 0.05
    calibration_tolerance: float = 0.02
    # 0: no worse on the test rows than predicting their mean.
    min_r2: float = 0.0
