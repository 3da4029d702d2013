"""The data schema: per-column logical and storage type, nullability, null rate, numeric range or
category set, the target's classes with their shares, and the target's task. A versioned JSON
file; pure code here (the CLI reads and writes it).

The task: version 2 files record none. They were written when every target was a set of
classes, so a version 2 schema fits classification, and also the task ``--task auto`` gives its
recorded labels (``common.task.infer_task`` of its classes, as numbers when the target column
is numeric): a numeric target with many distinct values, stored by an older release as
classes, is then read as the regression target it is, and checking it against today's data
under ``auto`` is no change of task. A schema records its task (and is then version 3) unless
reading it without one gives exactly that task: a classification schema of a target that looks
like classes is written as version 2, byte for byte as before, so older releases still read it;
a regression schema, or a classification schema of a numeric target with many values, records
its task and is version 3."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.task import infer_task
from tabular_model.transform import Task
from validator.profile import ColumnProfile, TableProfile, class_shares, label_values

SCHEMA_VERSION = 3  # the newest written; a schema recording no task is still version 2
READABLE_VERSIONS = (2, 3)
MAX_CATEGORIES = 1000  # larger vocabularies (ids, free text) are not stored in the schema


class SchemaError(ValueError):
    """A JSON document that is not a schema this release can read."""


class ColumnSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: Literal["numeric", "categorical"]
    dtype: str = Field(description="integer, float, boolean, datetime, string or other")
    nullable: bool = Field(description="whether the data the schema was inferred from had nulls")
    null_rate: float = Field(ge=0, le=1)
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = Field(
        default=None, description=f"sorted; None for numeric columns or > {MAX_CATEGORIES} values"
    )


class DataSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: Literal[2, 3] = 2  # 3 (SCHEMA_VERSION) exactly when the task is recorded
    target: str
    row_count: int = Field(ge=0, description="rows of the data the schema was inferred from")
    columns: dict[str, ColumnSchema]
    classes: list[str] | None = Field(
        description="target classes as strings; None: no target, or a regression target"
    )
    class_shares: dict[str, float] | None = Field(description="share of rows of each class")
    task: Task | None = Field(
        default=None, description="the target's task; None (version 2): see ``tasks``"
    )

    @model_validator(mode="after")
    def _task_needs_version_3(self) -> DataSchema:
        if (self.task is not None) != (self.version == 3):
            raise ValueError("version 3 schemas record the target's task, version 2 ones do not")
        return self

    def tasks(self) -> frozenset[Task]:
        """The tasks data checked against this schema may have: the recorded one; without one,
        classification and what ``--task auto`` gives the recorded labels (module docstring)."""
        if self.task is not None:
            return frozenset({self.task})
        return frozenset({"classification", self.labels_task()})

    def labels_task(self) -> Task:
        """What ``--task auto`` gives the recorded classes (classification: none recorded)."""
        target = self.columns.get(self.target)
        numeric = target is not None and target.type == "numeric"
        return infer_task(label_values(self.classes or [], "numeric" if numeric else "text"))

    def to_json(self) -> dict[str, Any]:
        found = self.model_dump(mode="json")
        if self.task is None:
            del found["task"]  # version 2, as written before tasks were recorded
        return found


def parse_schema(data: Any) -> DataSchema:
    """A schema from its JSON form; ``SchemaError`` says what is wrong with it."""
    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
        raise SchemaError("not a schema (no 'columns' object)")
    if data.get("version") not in READABLE_VERSIONS:
        raise SchemaError(
            f"schema version {data.get('version')!r}; this release reads version "
            f"{' or '.join(map(str, READABLE_VERSIONS))} (infer a new one)"
        )
    try:
        return DataSchema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise SchemaError(f"not a valid schema: {problems}") from exc


def column_schema(profile: ColumnProfile) -> ColumnSchema:
    """The schema of one column from its profile."""
    low = high = None
    if profile.numbers is not None:
        low, high = profile.numbers.minimum, profile.numbers.maximum
    categories = None
    if profile.counts is not None and len(profile.counts) <= MAX_CATEGORIES:
        categories = sorted(map(str, profile.counts.index))
    return ColumnSchema(
        type=profile.type,
        dtype=profile.dtype,
        nullable=profile.null_count > 0,
        null_rate=round(profile.null_rate, 6),
        min=low,
        max=high,
        categories=categories,
    )


def infer_schema(table: TableProfile, target: str, task: Task = "classification") -> DataSchema:
    """The schema of the profiled data with ``target`` as label column learnt as ``task`` (a
    regression target has no classes); the task is recorded unless reading the schema without
    it gives exactly ``task`` (module docstring)."""
    shares = None
    if table.labels is not None and task == "classification":
        shares = class_shares(table.labels)
    schema = DataSchema(
        target=target,
        row_count=table.rows,
        columns={name: column_schema(p) for name, p in table.columns.items()},
        classes=sorted(shares) if shares is not None else None,
        class_shares=shares,
    )
    if schema.tasks() == {task}:
        return schema
    return schema.model_copy(update={"task": task, "version": SCHEMA_VERSION})
