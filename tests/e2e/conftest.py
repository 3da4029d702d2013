"""End-to-end fixtures."""

from __future__ import annotations

from tests.trainer.workspace import torch_single_thread

__all__ = ["torch_single_thread"]
