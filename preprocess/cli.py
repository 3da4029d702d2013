"""``python -m preprocess``: split raw data, fit the transform on train, write encoded splits."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from contract.results import PreprocessResult, SplitCounts
from contract.step import StepArgumentParser, StepError, run_step
from preprocess import dataset, io
from preprocess.split import split_indices
from preprocess.transform import (
    EncodedFeatures,
    Label,
    TableTransform,
    as_label,
    encode_features,
    encode_target,
    fit_transform,
    logical_type,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessConfig:
    input: str
    output: str
    target: str
    seed: int
    val_fraction: float
    test_fraction: float
    sample_rows: int


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog="python -m preprocess", description=__doc__)
    p.add_argument("--input", required=True, help="raw data: parquet file or folder, or CSV")
    p.add_argument("--output", required=True, help="folder for splits, transform and manifest")
    p.add_argument("--target", required=True, help="label column")
    p.add_argument("--seed", type=int, default=42, help="seed of the split")
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of rows for val")
    p.add_argument("--test-fraction", type=float, default=0.15, help="share of rows for test")
    p.add_argument("--sample-rows", type=int, default=20, help="raw rows kept as model examples")
    return p


def config_from_args(args: argparse.Namespace) -> PreprocessConfig:
    for flag in ("val_fraction", "test_fraction"):
        if not 0 < getattr(args, flag) < 0.5:
            raise StepError(f"--{flag.replace('_', '-')} must be in (0, 0.5)")
    return PreprocessConfig(
        args.input,
        args.output.rstrip("/"),
        args.target,
        args.seed,
        args.val_fraction,
        args.test_fraction,
        args.sample_rows,
    )


def label_classes(frame: pd.DataFrame, target: str, source: str) -> tuple[Label, ...]:
    """The sorted label set; refuses a missing target, null labels and a single class."""
    if target not in frame.columns:
        raise StepError(
            f"{source}: target column {target!r} not found; columns are {list(frame.columns)[:30]}"
        )
    labels = frame[target]
    if labels.isna().any():
        raise StepError(f"{source}: target column {target!r} has {int(labels.isna().sum())} nulls")
    values = [as_label(v) for v in labels.unique()]
    if len(values) < 2:
        raise StepError(f"{source}: target column {target!r} has a single class {values}")
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return tuple(sorted(values) if numeric else sorted(values, key=str))


def refuse_infinite(frame: pd.DataFrame, target: str, source: str) -> None:
    """Infinite numbers cannot be scaled; name the columns that hold them."""
    bad = [
        str(name)
        for name in frame.columns
        if name != target
        and logical_type(frame[name]) == "numeric"
        and np.isinf(frame[name].to_numpy("float64", na_value=np.nan)).any()
    ]
    if bad:
        raise StepError(f"{source}: column(s) {bad} hold infinite values")


def preprocess(config: PreprocessConfig) -> PreprocessResult:
    frame = io.read_table(config.input)
    classes = label_classes(frame, config.target, config.input)
    refuse_infinite(frame, config.target, config.input)
    parts = split_indices(len(frame), config.val_fraction, config.test_fraction, config.seed)
    if min(len(idx) for idx in parts.values()) == 0:
        raise StepError(f"{config.input}: {len(frame)} rows are too few for train/val/test splits")
    raw = {name: frame.iloc[idx].reset_index(drop=True) for name, idx in parts.items()}
    transform = fit_transform(raw["train"], config.target, classes)
    counts = write_output(config, transform, raw)
    log.info(
        "preprocessed %s: %s rows, %d features, classes %s -> %s",
        config.input,
        counts,
        transform.feature_count,
        list(classes),
        config.output,
    )
    out = config.output
    return PreprocessResult(
        output_uri=out,
        train_uri=dataset.split_uri(out, "train"),
        val_uri=dataset.split_uri(out, "val"),
        test_uri=dataset.split_uri(out, "test"),
        raw_test_uri=dataset.raw_uri(out, "test"),
        transform_uri=dataset.transform_uri(out),
        row_counts=SplitCounts(**counts),
        feature_count=transform.feature_count,
        target=config.target,
        classes=list(classes),
    )


def write_output(
    config: PreprocessConfig, transform: TableTransform, raw: dict[str, pd.DataFrame]
) -> dict[str, int]:
    """Write every file, then the manifest; without the manifest readers refuse the folder."""
    out = config.output
    io.remove(io.join_uri(out, dataset.MANIFEST))
    counts: dict[str, int] = {}
    for name, rows in raw.items():
        features: EncodedFeatures = encode_features(transform, rows)
        split = dataset.EncodedSplit(
            features.numeric, features.categorical, encode_target(transform, rows[config.target])
        )
        io.write_parquet(dataset.encoded_frame(transform, split), dataset.split_uri(out, name))
        counts[name] = split.rows
    io.write_parquet(raw["test"], dataset.raw_uri(out, "test"))
    io.write_parquet(raw["train"].head(config.sample_rows), dataset.raw_uri(out, "sample"))
    io.write_json(transform.to_dict(), dataset.transform_uri(out))
    manifest = {"source": config.input, "seed": config.seed, "row_counts": counts}
    io.write_json(manifest, io.join_uri(out, dataset.MANIFEST))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    return run_step(
        "preprocess", build_parser(), lambda args: preprocess(config_from_args(args)), argv
    )


def main_entry() -> None:
    raise SystemExit(main())
