"""What ``python -m preprocess`` makes of an in-memory frame, through its own code: the rows of
each seeded split (``split_codes`` of its passes) and the transform fitted on train rows
(``TransformFitter`` fed as its scan pass feeds it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from common import tables
from preprocess.fit import FitOptions, TransformFitter
from preprocess.passes import SplitSpec, split_codes
from preprocess.split import SPLITS
from tabular_model.transform import Label, LogicalType, TableTransform, logical_type

DEFAULT_OPTIONS = FitOptions()


def seeded_splits(
    frame: pd.DataFrame, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 42
) -> dict[str, pd.DataFrame]:
    """The rows of ``frame`` (index kept) in each split, in input order, as ``python -m
    preprocess`` assigns them by row position; the defaults are its flags' defaults."""
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    codes = split_codes(batch, 0, SplitSpec(val_fraction, test_fraction, seed))
    return {name: frame[codes == code] for code, name in enumerate(SPLITS)}


def feature_types(frame: pd.DataFrame, target: str) -> dict[str, LogicalType]:
    """The logical type of every column but ``target``, read from the frame's Arrow schema as
    ``python -m preprocess`` reads it from its input's."""
    empty = pa.Schema.from_pandas(frame, preserve_index=False).empty_table().to_pandas()
    return {str(name): logical_type(empty[name]) for name in empty.columns if name != target}


def fit_train_rows(
    frame: pd.DataFrame,
    target: str,
    classes: tuple[Label, ...],
    options: FitOptions = DEFAULT_OPTIONS,
) -> TableTransform:
    """The transform fitted when every row of ``frame`` is a train row, read as one batch with
    its text columns dictionary-encoded (as the scan pass reads its input)."""
    fitter = TransformFitter(target, feature_types(frame, target), options)
    batch = tables.dictionary_encode(pa.RecordBatch.from_pandas(frame, preserve_index=False))
    fitter.update(batch, np.ones(len(frame), dtype=bool), 0)
    return fitter.transform(classes)
