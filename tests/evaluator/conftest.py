"""Fixtures: two trained candidates in one embedded MLflow store, built once per module; each
test registers its own model name in it."""

from __future__ import annotations

from tests.trainer.workspace import model_name, store, torch_single_thread, two_runs

__all__ = ["model_name", "store", "torch_single_thread", "two_runs"]
