"""The preprocessing of one input: two passes over the raw data (statistics and the fitted
transform, then the encoded splits), the transform and, last, the manifest."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from common import dataset, storage, tables
from common.step import StepError
from contract.results import PreprocessResult, SplitCounts
from preprocess.fit import FitOptions, TransformFitter
from preprocess.passes import Scan, SplitSpec, scan, write_splits
from tabular_model.transform import TRANSFORM_VERSION, Label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessConfig:
    input: str
    output: str
    target: str
    split: SplitSpec
    fit: FitOptions
    sample_rows: int
    batch_rows: int
    in_memory_limit_mb: int


def output_files(out: str) -> list[str]:
    """Every file ``preprocess`` writes under the folder ``out``."""
    splits = [dataset.split_uri(out, split) for split in dataset.SPLITS]
    raw = [dataset.raw_uri(out, name) for name in ("test", "sample")]
    return [*splits, *raw, dataset.transform_uri(out), dataset.manifest_uri(out)]


def feature_types(source: tables.Source, config: PreprocessConfig) -> dict[str, Any]:
    """Logical type of every feature column, from the input's schema; refuses a missing target
    or split key."""
    names = source.schema.names
    flags = (
        ("--target", config.target),
        ("--split-key", config.split.key),
        ("--split-column", config.split.column),
    )
    for flag, column in flags:
        if column is not None and column not in names:
            raise StepError(
                f"{config.input}: {flag} column {column!r} not found; columns are {names[:30]}"
            )
    skip = {config.target, *config.split.columns}
    return {
        name: kind for name, kind in tables.column_kinds(source.schema).items() if name not in skip
    }


def check_scan(scan: Scan, config: PreprocessConfig) -> tuple[Label, ...]:
    """Refuse what cannot be trained on; the sorted classes otherwise."""
    source, target = config.input, config.target
    if scan.null_labels:
        raise StepError(f"{source}: target column {target!r} has {scan.null_labels} nulls")
    empty = [name for name, count in scan.values.items() if count == 0 and name != target]
    if empty:
        raise StepError(f"{source}: column(s) {empty} have no values (all null); drop them")
    if scan.infinite:
        raise StepError(f"{source}: column(s) {sorted(scan.infinite)} hold infinite values")
    if len(scan.labels) < 2:
        raise StepError(
            f"{source}: target column {target!r} has a single class {sorted(scan.labels, key=str)}"
        )
    if min(scan.split_rows) == 0:
        raise StepError(
            f"{source}: {scan.rows} rows are too few for train/val/test splits {scan.counts}"
        )
    values = list(scan.labels)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return tuple(sorted(values) if numeric else sorted(values, key=str))


def batch_source(source: tables.Source, config: PreprocessConfig) -> tables.BatchSource:
    """The input, read once into memory when it is small enough: both passes then cost one
    read (the fast path); otherwise streamed, once per pass, in bounded memory."""
    mib = source.size_bytes / (1 << 20)
    if mib > config.in_memory_limit_mb:
        log.info("streaming %s (%.0f MiB decoded) twice, batch by batch", config.input, mib)
        return source
    log.info("reading %s (%.0f MiB decoded) once, into memory", config.input, mib)
    return source.in_memory(config.batch_rows)


def preprocess(config: PreprocessConfig) -> PreprocessResult:
    """Write the splits, the transform and the manifest under ``config.output``."""
    source = tables.open_source(config.input)
    fitter = TransformFitter(config.target, feature_types(source, config), config.fit)
    out = config.output
    # A rerun into the same folder: readers must refuse it until the new manifest is written.
    storage.remove(dataset.manifest_uri(out))
    if removed := storage.remove_partials(out):
        log.info("removed %d half-written file(s) of an earlier, killed run in %s", removed, out)
    with ThreadPoolExecutor(max_workers=1) as pool:
        data = batch_source(source, config)
        # Hashing the input's bytes overlaps both passes (hashlib releases the GIL); it starts
        # after an in-memory read, which would compete with it for the disk and both cores.
        fingerprint = pool.submit(storage.fingerprint, config.input)
        stats = scan(data, config.split, fitter, config.batch_rows)
        classes = check_scan(stats, config)
        transform = fitter.transform(classes)
        counts = write_splits(
            data, config.split, transform, out, config.batch_rows, config.sample_rows
        )
        storage.write_json(transform.to_dict(), dataset.transform_uri(out))
        manifest = build_manifest(config, fingerprint.result(), counts, transform.feature_count)
    storage.write_json(manifest, dataset.manifest_uri(out))
    log.info(
        "preprocessed %s: %s rows, %d features, classes %s -> %s",
        config.input,
        counts,
        transform.feature_count,
        list(classes),
        out,
    )
    return PreprocessResult(
        output_uri=out,
        train_uri=dataset.split_uri(out, "train"),
        val_uri=dataset.split_uri(out, "val"),
        test_uri=dataset.split_uri(out, "test"),
        raw_test_uri=dataset.raw_uri(out, "test"),
        transform_uri=dataset.transform_uri(out),
        manifest_uri=dataset.manifest_uri(out),
        row_counts=SplitCounts(**counts),
        feature_count=transform.feature_count,
        target=config.target,
        classes=list(classes),
        fingerprint=manifest["fingerprint"],
    )


def build_manifest(
    config: PreprocessConfig, fingerprint: str, counts: dict[str, int], feature_count: int
) -> dict[str, Any]:
    """What the output was made from and how; written last, so its presence means complete."""
    return {
        "source": config.input,
        "fingerprint": fingerprint,
        "target": config.target,
        "seed": config.split.seed,
        "split_key": config.split.key,
        "split_column": config.split.column,
        "val_fraction": config.split.val_fraction,
        "test_fraction": config.split.test_fraction,
        "numeric_scaling": config.fit.scaling,
        "min_frequency": config.fit.min_frequency,
        "row_counts": counts,
        "feature_count": feature_count,
        "transform_version": TRANSFORM_VERSION,
    }
