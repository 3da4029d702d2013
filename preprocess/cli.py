"""``python -m preprocess``: split raw data deterministically, fit the transform on the train rows
only, and write the encoded splits, the transform (JSON) and, last, a manifest."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from contextlib import suppress

import pyarrow as pa

from common.step import StepArgumentParser, StepError, run_step
from preprocess.fit import FitOptions
from preprocess.job import PreprocessConfig, preprocess
from preprocess.passes import SplitSpec
from tabular_model.transform import SCALINGS


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog="python -m preprocess", description=__doc__)
    p.add_argument("--input", required=True, help="raw data: parquet file or folder, or CSV")
    p.add_argument("--output", required=True, help="folder for splits, transform and manifest")
    p.add_argument("--target", required=True, help="label column")
    p.add_argument("--seed", type=int, default=42, help="seed of the split (by row position)")
    p.add_argument(
        "--split-key",
        default=None,
        help="split by a hash of this column instead (a key lands in the same split every day); "
        "the column is not used as a feature",
    )
    p.add_argument(
        "--split-column",
        default=None,
        help="take each row's split from this column (values train, val, test) instead of "
        "hashing; the fractions and seed are then unused and the column is not a feature",
    )
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of rows for val")
    p.add_argument("--test-fraction", type=float, default=0.15, help="share of rows for test")
    p.add_argument(
        "--numeric-scaling",
        choices=SCALINGS,
        default="robust",
        help="robust: median/IQR; quantile: train CDF to [-1, 1]; standard: mean/std",
    )
    p.add_argument(
        "--min-frequency",
        type=int,
        default=5,
        help="categories seen fewer times in train share the 'other' code",
    )
    p.add_argument("--sample-rows", type=int, default=20, help="raw rows kept as model examples")
    p.add_argument("--batch-rows", type=int, default=262_144, help="rows read per batch")
    p.add_argument(
        "--in-memory-limit-mb",
        type=int,
        default=2048,
        help="inputs up to this size (decoded) are read once and kept in memory; larger ones "
        "are streamed twice in bounded memory (0: always stream)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> PreprocessConfig:
    for flag in ("val_fraction", "test_fraction"):
        if not 0 < getattr(args, flag) < 0.5:
            raise StepError(f"--{flag.replace('_', '-')} must be in (0, 0.5)")
    lows = (("min_frequency", 1), ("batch_rows", 1), ("sample_rows", 0), ("in_memory_limit_mb", 0))
    for flag, low in lows:
        if getattr(args, flag) < low:
            raise StepError(f"--{flag.replace('_', '-')} must be at least {low}")
    if args.split_key is not None and args.split_column is not None:
        raise StepError("--split-key and --split-column are alternatives; give one")
    split = SplitSpec(
        args.val_fraction, args.test_fraction, args.seed, args.split_key, args.split_column
    )
    fit = FitOptions(args.numeric_scaling, args.min_frequency, seed=args.seed)
    output = args.output.rstrip("/")
    return PreprocessConfig(
        input=args.input,
        output=output,
        target=args.target,
        split=split,
        fit=fit,
        sample_rows=args.sample_rows,
        batch_rows=args.batch_rows,
        in_memory_limit_mb=args.in_memory_limit_mb,
    )


def use_jemalloc() -> None:
    """Arrow's jemalloc pool instead of its default (mimalloc), unless the environment picks
    one (``ARROW_DEFAULT_MEMORY_POOL``): on 1M rows it was about 25 % faster and its peak
    memory 20 % lower here, as it hands freed batch buffers back sooner."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    with suppress(NotImplementedError):  # a pyarrow built without jemalloc keeps its default
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def main(argv: Sequence[str] | None = None) -> int:
    use_jemalloc()
    return run_step(
        "preprocess", build_parser(), lambda args: preprocess(config_from_args(args)), argv
    )


def main_entry() -> None:
    raise SystemExit(main())
