"""The data schema: per-column logical and storage type, nullability, null rate, numeric range or
category set, and the target's classes with their shares. A versioned JSON file; pure code here
(the CLI reads and writes it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from validator.profile import ColumnProfile, TableProfile, class_shares

SCHEMA_VERSION = 2
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

    version: Literal[2] = 2  # SCHEMA_VERSION
    target: str
    row_count: int = Field(ge=0, description="rows of the data the schema was inferred from")
    columns: dict[str, ColumnSchema]
    classes: list[str] | None = Field(description="target classes as strings; None: no target")
    class_shares: dict[str, float] | None = Field(description="share of rows of each class")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_schema(data: Any) -> DataSchema:
    """A schema from its JSON form; ``SchemaError`` says what is wrong with it."""
    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
        raise SchemaError("not a schema (no 'columns' object)")
    if data.get("version") != SCHEMA_VERSION:
        raise SchemaError(
            f"schema version {data.get('version')!r}; this release reads version "
            f"{SCHEMA_VERSION} (infer a new one)"
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


def infer_schema(table: TableProfile, target: str) -> DataSchema:
    """The schema of the profiled data with ``target`` as label column."""
    shares = class_shares(table.labels) if table.labels is not None else None
    return DataSchema(
        target=target,
        row_count=table.rows,
        columns={name: column_schema(p) for name, p in table.columns.items()},
        classes=sorted(shares) if shares is not None else None,
        class_shares=shares,
    )
