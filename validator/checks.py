"""Data checks. Pure: the data's profile and a schema in, every anomaly out (not just the first).

Severities follow what stops a pipeline in production: anything that breaks training or makes the
model meaningless (missing or unusable target, missing columns, type changes, infinities, unseen
labels, duplicate keys, too few rows) is an error; changes a model survives but a person should
look at (new columns, more nulls, values outside the known range, new categories, moderate drift)
are warnings, which become errors past a larger threshold.

The target's task (classification or regression, resolved by the caller) decides its checks: a
classification target needs two classes and is checked for unseen labels and a shift of class
shares; a regression target must be numbers, finite and not constant (``common.task``'s
``regression_values``), its range is checked as any numeric column's, and its drift is measured
as a numeric column's (``validator.drift``). A target whose task differs from the schema's is
an error."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from common.task import TargetError, is_number_column, regression_values
from tabular_model.transform import Task
from validator.profile import ColumnProfile, KeyProfile, TableProfile, class_shares
from validator.schema import ColumnSchema, DataSchema
from validator.thresholds import Thresholds as Thresholds

Severity = Literal["error", "warning"]
MIXED_NUMERIC_SHARE = 0.5  # a text column whose values are mostly numbers is a numeric column
EXAMPLES = 5  # offending values quoted in a description


@dataclass(frozen=True)
class Anomaly:
    column: str | None
    check: str
    severity: Severity
    expected: Any
    observed: Any
    description: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def graded(value: float, warning: float, error: float) -> Severity | None:
    """The severity of ``value`` against a warning and an error threshold (None: below both)."""
    if value > error:
        return "error"
    if value > warning:
        return "warning"
    return None


def ordered(anomalies: list[Anomaly]) -> list[Anomaly]:
    """Errors first, then by column and check, so reports are stable across runs."""
    return sorted(anomalies, key=lambda a: (a.severity, a.column or "", a.check))


def plural(count: int, noun: str) -> str:
    """``1 value``, ``2 values``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def significant(value: float) -> float:
    """``value`` to 6 significant digits, so reports do not show float noise."""
    return float(f"{value:.6g}")


def _examples(values: Any) -> list[str]:
    return [str(v) for v in list(values)[:EXAMPLES]]


# --- checks that need no schema ----------------------------------------------------------------


def check_data(
    table: TableProfile, target: str, thresholds: Thresholds, task: Task = "classification"
) -> list[Anomaly]:
    """Row count, the target (as ``task`` needs it), all-null, infinite and mixed-type columns,
    and the declared key. Data without rows is that one error: its columns have nothing to
    check."""
    if not table.rows:
        return [_no_rows(table, thresholds)]
    found = _row_count(table.rows, thresholds)
    found += _target(table, target) if task == "classification" else _numeric_target(table, target)
    for profile in table.columns.values():
        found += _column(profile)
    if table.keys is not None:
        found += check_keys(table.keys)
    return ordered(found)


def _no_rows(table: TableProfile, thresholds: Thresholds) -> Anomaly:
    columns = list(table.columns)[:30]
    text = (
        f"the data has no rows (its {plural(len(table.columns), 'column')}: {columns}); at "
        f"least {thresholds.min_rows} are needed (--min-rows)"
    )
    return Anomaly(None, "no_rows", "error", f">= {thresholds.min_rows}", 0, text)


def _row_count(rows: int, thresholds: Thresholds) -> list[Anomaly]:
    if rows >= thresholds.min_rows:
        return []
    need = thresholds.min_rows
    text = f"only {rows} rows; at least {need} are needed (--min-rows)"
    return [Anomaly(None, "too_few_rows", "error", f">= {need}", rows, text)]


def _target(table: TableProfile, target: str) -> list[Anomaly]:
    """A classification target: present, every row labelled, at least two classes."""
    found = _missing_target(table, target)
    if found or table.labels is None:
        return found
    nulls = table.columns[target].null_count
    if nulls:
        text = f"target {target!r} has {plural(nulls, 'null label')}; every row needs a label"
        found.append(Anomaly(target, "null_target", "error", 0, nulls, text))
    classes = sorted(table.labels)
    if len(classes) < 2:
        text = f"target {target!r} needs at least two classes, has {classes}"
        found.append(Anomaly(target, "single_class", "error", ">= 2 classes", classes, text))
    return found


def _missing_target(table: TableProfile, target: str) -> list[Anomaly]:
    if target in table.columns and table.labels is not None:
        return []
    columns = list(table.columns)[:30]
    text = f"target column {target!r} is missing; columns: {columns}"
    return [Anomaly(target, "missing_target", "error", "present", "absent", text)]


def _numeric_target(table: TableProfile, target: str) -> list[Anomaly]:
    """A regression target: numbers (not text or booleans), every row with a value (infinite
    values are the column's ``infinite_values`` error), more than one distinct value."""
    missing = _missing_target(table, target)
    if missing or table.target_values is None:
        return missing
    found: list[Anomaly] = []
    profile = table.columns[target]
    if profile.null_count:
        text = (
            f"target {target!r} has {plural(profile.null_count, 'missing value')} (null or "
            "NaN); every row of a regression target needs a number"
        )
        found.append(Anomaly(target, "null_target", "error", 0, profile.null_count, text))
    values = table.target_values
    if is_number_column(values):  # missing and infinite values are counted above
        values = values[np.isfinite(values.to_numpy("float64"))]
    try:
        regression_values(values, target)
    except TargetError as exc:
        if is_number_column(values):
            observed: Any = significant(float(values.iloc[0]))
            found.append(
                Anomaly(target, "constant_target", "error", ">= 2 values", observed, str(exc))
            )
        else:
            found.append(
                Anomaly(target, "non_numeric_target", "error", "numbers", profile.dtype, str(exc))
            )
    return found


def _column(profile: ColumnProfile) -> list[Anomaly]:
    name = profile.name
    if profile.rows and profile.null_count == profile.rows:
        text = f"column {name!r} has no values at all (every row is null)"
        return [Anomaly(name, "all_null", "error", "some values", "all null", text)]
    if profile.inf_count:
        text = f"column {name!r} has {plural(profile.inf_count, 'infinite value')} (inf or -inf)"
        return [Anomaly(name, "infinite_values", "error", 0, profile.inf_count, text)]
    return _mixed_types(profile)


def _mixed_types(profile: ColumnProfile) -> list[Anomaly]:
    """A text column whose values are mostly numbers but not all: a numeric column polluted
    with placeholders such as '?' or 'n/a' (typical of CSV exports)."""
    counts = profile.counts
    if counts is None or not len(counts) or profile.dtype == "boolean":
        return []
    is_number = pd.to_numeric(pd.Series(counts.index, dtype="string"), errors="coerce").notna()
    share = float(counts[is_number.to_numpy()].sum() / counts.sum())
    if not MIXED_NUMERIC_SHARE <= share < 1:
        return []
    text_values = _examples(counts.index[~is_number.to_numpy()])
    text = (
        f"column {profile.name!r} mixes numbers ({share:.1%} of its values) and text "
        f"({1 - share:.1%}, e.g. {text_values}); clean the source or write those values as missing"
    )
    observed = {"numeric_share": round(share, 6), "text_values": text_values}
    return [Anomaly(profile.name, "mixed_types", "error", "one type", observed, text)]


def check_keys(key: KeyProfile) -> list[Anomaly]:
    """A declared key (one or more columns) must be present, non-null and unique."""
    label = ", ".join(key.columns)
    if key.missing:
        text = f"key column(s) {list(key.missing)} (--key) are not in the data"
        return [Anomaly(label, "missing_key", "error", list(key.columns), "absent", text)]
    found: list[Anomaly] = []
    if key.null_rows:
        text = f"key ({label}) is null in {key.null_rows} rows; every row needs a key"
        found.append(Anomaly(label, "null_keys", "error", 0, key.null_rows, text))
    if key.duplicate_rows:
        count, examples = key.duplicate_rows, list(key.examples)
        text = (
            f"key ({label}) repeats in {plural(count, 'row')}, e.g. {examples}; keys must be unique"
        )
        found.append(Anomaly(label, "duplicate_keys", "error", 0, count, text))
    return found


# --- checks against a schema -------------------------------------------------------------------


def check_against_schema(
    table: TableProfile, schema: DataSchema, thresholds: Thresholds, task: Task = "classification"
) -> list[Anomaly]:
    """Every difference between the data, whose target is learnt as ``task``, and ``schema``."""
    profiles = table.columns
    found: list[Anomaly] = []
    for name in sorted(schema.columns.keys() - profiles.keys()):
        text = f"column {name!r} is in the schema but not in the data"
        found.append(Anomaly(name, "missing_column", "error", "present", "absent", text))
    for name in sorted(profiles.keys() - schema.columns.keys()):
        text = f"column {name!r} is not in the schema (a new column; it is ignored until adopted)"
        found.append(Anomaly(name, "new_column", "warning", "absent", "present", text))
    for name in sorted(schema.columns.keys() & profiles.keys()):
        column = ColumnCheck(name, schema.columns[name], profiles[name], thresholds, schema.target)
        found += column.anomalies()
    if schema.target not in profiles or table.labels is None:
        return ordered(found)
    if task not in schema.tasks():
        found.append(_task_changed(schema, task, profiles[schema.target]))
    elif task == "classification" and schema.class_shares is not None:
        found += _labels(schema, class_shares(table.labels), thresholds)
    return ordered(found)


def _task_changed(schema: DataSchema, task: Task, target: ColumnProfile) -> Anomaly:
    """The target is learnt as another task than the schema's: a model trained and checked for
    one task is no model of the other."""
    was = " or ".join(sorted(schema.tasks()))
    text = (
        f"target {schema.target!r} was a {was} target in the schema, is now a {task} target "
        f"({target.type}, stored as {target.dtype}); fix the data, or pass the task the schema "
        "has with --task, or infer a new schema if the change is intended"
    )
    return Anomaly(schema.target, "task_changed", "error", sorted(schema.tasks()), task, text)


@dataclass(frozen=True)
class ColumnCheck:
    """One column's profile against its schema."""

    name: str
    want: ColumnSchema
    got: ColumnProfile
    thresholds: Thresholds
    target: str

    def anomalies(self) -> list[Anomaly]:
        if self.want.type != self.got.type:
            text = f"column {self.name!r} was {self.want.type}, is now {self.got.type}"
            return [
                Anomaly(self.name, "type_changed", "error", self.want.type, self.got.type, text)
            ]
        return (
            self.storage()
            + self.nulls()
            + (self.range() if self.got.values is not None else self.categories())
        )

    def storage(self) -> list[Anomaly]:
        kinds = {self.want.dtype, self.got.dtype}
        if len(kinds) == 1 or kinds == {"integer", "float"}:  # nulls turn integers into floats
            return []
        text = f"column {self.name!r} was stored as {self.want.dtype}, is now {self.got.dtype}"
        return [
            Anomaly(self.name, "dtype_changed", "warning", self.want.dtype, self.got.dtype, text)
        ]

    def nulls(self) -> list[Anomaly]:
        if self.name == self.target:
            return []  # null labels are always an error (check_data)
        want, got, limits = self.want.null_rate, self.got.null_rate, self.thresholds
        severity = graded(got - want, limits.null_rate_warning, limits.null_rate_error)
        if severity:
            text = (
                f"column {self.name!r} is {got:.1%} null, the schema {want:.1%} "
                f"(a rise over {limits.null_rate_warning:.0%} is a warning, over "
                f"{limits.null_rate_error:.0%} an error)"
            )
            return [Anomaly(self.name, "null_rate", severity, round(want, 4), round(got, 4), text)]
        if not self.want.nullable and self.got.null_count:
            text = f"column {self.name!r} had no nulls in the schema, now has {self.got.null_count}"
            return [Anomaly(self.name, "new_nulls", "warning", 0, self.got.null_count, text)]
        return []

    def range(self) -> list[Anomaly]:
        low, high, numbers = self.want.min, self.want.max, self.got.numbers
        if low is None or high is None or numbers is None:
            return []
        margin = (high - low) * self.thresholds.range_margin
        outside, share = outside_range(self.got, low - margin, high + margin)
        if not outside:
            return []
        severity: Severity = "error" if share > self.thresholds.invalid_share_error else "warning"
        observed = [significant(numbers.minimum), significant(numbers.maximum)]
        allowed = f" ± {significant(margin):g}" if margin else ""
        about = "about " if self.got.sampled else ""
        text = (
            f"column {self.name!r} has {about}{plural(outside, 'value')} ({share:.2%}) outside "
            f"the schema range [{low:g}, {high:g}]{allowed}; observed "
            f"[{observed[0]:g}, {observed[1]:g}]"
        )
        expected = [significant(low), significant(high)]
        return [Anomaly(self.name, "out_of_range", severity, expected, observed, text)]

    def categories(self) -> list[Anomaly]:
        counts, known = self.got.counts, self.want.categories
        if counts is None or not known or not len(counts):
            return []
        unseen = counts[~counts.index.isin(known)]
        if not len(unseen):
            return []
        # Values counted as untracked (past the cap of distinct values) count as unseen.
        untracked = self.got.untracked
        share = float((unseen.sum() + untracked) / (counts.sum() + untracked))
        severity: Severity = "error" if share > self.thresholds.invalid_share_error else "warning"
        examples = _examples(unseen.index)
        text = (
            f"column {self.name!r} has {len(unseen)} unseen categor"
            f"{'y' if len(unseen) == 1 else 'ies'} in {share:.2%} of its values, e.g. {examples}"
        )
        return [Anomaly(self.name, "unseen_categories", severity, len(known), examples, text)]


def outside_range(profile: ColumnProfile, low: float, high: float) -> tuple[int, float]:
    """How many finite values of a numeric column lie outside [low, high], and their share of
    its finite values. Counted exactly while ``values`` holds them all; otherwise estimated
    from the sample, and never below the extremes known to lie outside (one value outside is
    never missed)."""
    values, numbers = profile.values, profile.numbers
    assert values is not None and numbers is not None
    counted = int(np.count_nonzero((values < low) | (values > high)))
    if not profile.sampled:
        return counted, counted / len(values)
    extremes = int(numbers.minimum < low) + int(numbers.maximum > high)
    estimate = max(round(counted / len(values) * numbers.count), extremes)
    return estimate, estimate / numbers.count


def _labels(schema: DataSchema, shares: dict[str, float], thresholds: Thresholds) -> list[Anomaly]:
    """Unseen labels (an error: the model cannot predict them) and a shift of class shares."""
    target, known = schema.target, schema.classes or []
    found: list[Anomaly] = []
    unseen = sorted(set(shares) - set(known))
    if unseen:
        text = f"target {target!r} has labels the schema does not know: {unseen}"
        found.append(Anomaly(target, "unseen_labels", "error", known, unseen, text))
    before = schema.class_shares or {}
    change = {c: shares.get(c, 0.0) - before.get(c, 0.0) for c in sorted(set(before) | set(shares))}
    worst = max(change, key=lambda c: abs(change[c]), default=None)
    if worst is None:
        return found
    severity = graded(
        abs(change[worst]), thresholds.label_shift_warning, thresholds.label_shift_error
    )
    if severity:
        text = (
            f"target {target!r}: class {worst!r} was {before.get(worst, 0.0):.1%} of rows, is now "
            f"{shares.get(worst, 0.0):.1%} ({change[worst] * 100:+.1f} points)"
        )
        observed = {c: round(v, 4) for c, v in shares.items()}
        found.append(Anomaly(target, "label_shift", severity, before, observed, text))
    return found
