"""Which task a target column asks for, and the checks of a numeric target; one rule for
preprocess and validate, which must agree on it.

``auto``: a numeric, non-boolean target with a fractional value, or with more than
``MAX_CLASS_VALUES`` distinct values, is a regression target; anything else (text, booleans,
categories, a handful of integer codes) is a classification target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # pandas and numpy load only when a target is looked at (not for --help)
    import numpy as np
    import pandas as pd

    from tabular_model.transform import Task

TASKS = ("classification", "regression")  # tabular_model.transform.Task
TASK_CHOICES = ("auto", *TASKS)
MAX_CLASS_VALUES = 20
AUTO_RULE = (
    "auto: a numeric target with a fractional value or more than "
    f"{MAX_CLASS_VALUES} distinct values is regression, anything else classification"
)

TaskChoice = Literal["auto", "classification", "regression"]


class TargetError(ValueError):
    """A target the task cannot use; the message names the column."""


def is_number_column(values: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def auto_task(is_number: bool, fractional: bool, distinct: int) -> Task:
    """The rule of ``auto`` from what a pass over the target saw: whether it is a number
    column (not booleans), whether a value had a fractional part, how many distinct values."""
    if is_number and (fractional or distinct > MAX_CLASS_VALUES):
        return "regression"
    return "classification"


def infer_task(values: pd.Series) -> Task:
    """The task ``auto`` gives for a target column; missing values are left out."""
    import numpy as np

    if not is_number_column(values):
        return "classification"
    present = values.dropna().to_numpy("float64")
    present = present[np.isfinite(present)]
    fractional = bool((present != np.round(present)).any())
    return auto_task(True, fractional, len(np.unique(present)))


def resolve_task(choice: str, values: pd.Series) -> Task:
    """``choice`` itself, or what ``auto`` infers from ``values``."""
    if choice == "auto":
        return infer_task(values)
    if choice not in TASKS:
        raise TargetError(f"task {choice!r} is not one of {list(TASK_CHOICES)}")
    return choice  # type: ignore[return-value]


def regression_values(values: pd.Series, column: str) -> np.ndarray:
    """The target as float64, after refusing what regression cannot learn from: text or
    booleans (a classification target), missing or infinite values, and a constant."""
    import numpy as np
    import pandas as pd

    if not is_number_column(values):
        kind = "booleans" if pd.api.types.is_bool_dtype(values) else f"{values.dtype} values"
        raise TargetError(
            f"target column {column!r} holds {kind}, not numbers: a regression target must be "
            "numeric (use --task classification for labels)"
        )
    numbers = values.to_numpy("float64", na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if bad.any():
        raise TargetError(
            f"target column {column!r} has {int(bad.sum())} missing or infinite value(s) "
            f"(first at row {int(np.flatnonzero(bad)[0])}); drop or fix those rows"
        )
    if len(numbers) and numbers.min() == numbers.max():
        raise TargetError(
            f"target column {column!r} is constant ({numbers[0]:g}): there is nothing to learn"
        )
    return numbers
