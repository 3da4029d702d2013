"""The preprocessing of one input: two passes over the raw data (statistics and the fitted
transform, then the encoded splits), the transform and, last, the manifest."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from common import dataset, storage, tables
from common.step import StepError
from common.task import TaskChoice, auto_task
from contract.results import PreprocessResult, SplitCounts, TargetScaling
from preprocess.fit import FitOptions, TransformFitter
from preprocess.passes import LABEL_CAP, Scan, SplitSpec, scan, write_splits
from tabular_model.transform import Label, TableTransform, Task

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
    task: TaskChoice = "auto"


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


def check_scan(scan: Scan, config: PreprocessConfig) -> None:
    """Refuse what cannot be trained on, whatever the task."""
    source, target = config.input, config.target
    if scan.null_labels:
        raise StepError(f"{source}: target column {target!r} has {scan.null_labels} nulls")
    empty = [name for name, count in scan.values.items() if count == 0 and name != target]
    if empty:
        raise StepError(f"{source}: column(s) {empty} have no values (all null); drop them")
    if scan.infinite:
        raise StepError(f"{source}: column(s) {sorted(scan.infinite)} hold infinite values")
    if min(scan.split_rows) == 0:
        raise StepError(
            f"{source}: {scan.rows} rows are too few for train/val/test splits {scan.counts}"
        )


def scanned_task(scan: Scan, config: PreprocessConfig, target_is_number: bool) -> Task:
    """--task, or what ``auto`` makes of the target (common.task's rule)."""
    if config.task != "auto":
        return config.task
    distinct = LABEL_CAP + 1 if scan.labels_overflow else len(scan.labels)
    return auto_task(target_is_number, scan.fractional_labels, distinct)


def classes_of(scan: Scan, config: PreprocessConfig) -> tuple[Label, ...]:
    """The sorted classes of a classification target."""
    source, target = config.input, config.target
    if scan.labels_overflow:
        raise StepError(
            f"{source}: target column {target!r} has more than {LABEL_CAP} distinct values, too "
            "many for classes; for a number to predict use --task regression"
        )
    if len(scan.labels) < 2:
        raise StepError(
            f"{source}: target column {target!r} has a single class {sorted(scan.labels, key=str)}"
        )
    values = list(scan.labels)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return tuple(sorted(values) if numeric else sorted(values, key=str))


def check_regression_target(
    scan: Scan, config: PreprocessConfig, target_is_number: bool, fitter: TransformFitter
) -> None:
    """A regression target must be numbers, not all the same, and > -1 for --log-target."""
    source, target = config.input, config.target
    if not target_is_number:
        raise StepError(
            f"{source}: target column {target!r} does not hold numbers: a regression target "
            "must be numeric (use --task classification for labels)"
        )
    if len(scan.labels) < 2 and not scan.labels_overflow:
        raise StepError(
            f"{source}: target column {target!r} is constant {sorted(scan.labels)}: there is "
            "nothing to learn"
        )
    if config.fit.log_target and fitter.target_min < 0:
        raise StepError(
            f"{source}: --log-target needs a non-negative target; column {target!r} has "
            f"{fitter.target_min:g} in the train rows"
        )


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
    target_is_number = tables.column_kinds(source.schema).get(config.target) == "numeric"
    fitter = TransformFitter(
        config.target, feature_types(source, config), config.fit, target_is_number
    )
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
        check_scan(stats, config)
        task = scanned_task(stats, config, target_is_number)
        if task == "regression":
            check_regression_target(stats, config, target_is_number, fitter)
            classes: tuple[Label, ...] = ()
        else:
            classes = classes_of(stats, config)
        transform = fitter.transform(classes, task)
        counts = write_splits(
            data, config.split, transform, out, config.batch_rows, config.sample_rows
        )
        storage.write_json(transform.to_dict(), dataset.transform_uri(out))
        manifest = build_manifest(config, fingerprint.result(), counts, transform)
    storage.write_json(manifest, dataset.manifest_uri(out))
    log.info(
        "preprocessed %s: %s rows, %d features, %s -> %s",
        config.input,
        counts,
        transform.feature_count,
        f"classes {list(classes)}" if classes else f"regression {transform.target_scaling}",
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
        task=transform.task,
        classes=list(classes) if classes else None,
        target_scaling=(
            TargetScaling.model_validate(scaling.to_dict())
            if (scaling := transform.target_scaling)
            else None
        ),
        fingerprint=manifest["fingerprint"],
    )


def build_manifest(
    config: PreprocessConfig, fingerprint: str, counts: dict[str, int], transform: TableTransform
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
        "feature_count": transform.feature_count,
        "task": transform.task,
        "transform_version": transform.version,
    }
