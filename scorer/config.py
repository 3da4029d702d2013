"""The scorer's resolved flags (no heavy import: ``scorer.cli`` builds it before the job loads)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreConfig:
    """What to score with which model, and where the predictions go."""

    model_uri: str  # models:/NAME@ALIAS or models:/NAME/VERSION
    input_uri: str
    output_uri: str
    output_format: str  # parquet or csv (from the output's extension)
    keep_columns: tuple[str, ...] = ()  # input columns copied to the output (ids, keys)
    batch_rows: int = 65_536

    @property
    def manifest_uri(self) -> str:
        return f"{self.output_uri}.manifest.json"
