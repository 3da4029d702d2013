"""bench.train_throughput: ours is an epoch of the trainer's own loop under its defaults, and a
tiny run reports it against both baselines."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from bench.train_throughput import CARDINALITIES, CLASSES, NUMERIC, main, synthetic, trainer_epoch
from tabular_model.network import NetworkConfig, TabularMLP
from trainer.loop import LoopConfig


def test_ours_is_an_epoch_of_the_trainers_loop_under_its_defaults() -> None:
    data = synthetic(500, torch.device("cpu"))
    net = TabularMLP(NetworkConfig(NUMERIC, CARDINALITIES, CLASSES, width=16, depth=1))
    training = trainer_epoch(net, data, batch_size=128, repeats=30)
    assert training.config.epochs == 31  # the cosine schedule outlasts every timed epoch
    defaults = dataclasses.replace(LoopConfig(), batch_size=128, epochs=31)
    assert training.config == defaults
    before = [p.detach().clone() for p in net.parameters()]
    training.run_epoch(1)
    assert training.optimization.scheduler.last_epoch == math.ceil(500 / 128)
    assert any(not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


@pytest.mark.slow
def test_a_tiny_run_reports_ours_against_both_baselines(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--rows", "600", "--batch-size", "128", "--width", "16", "--depth", "1",
            "--repeats", "1", "--device", "cpu", "--json"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["samples_per_sec"]) == {"ours", "naive_dataloader", "compute_only"}
    assert all(value > 0 for value in report["samples_per_sec"].values())
    assert (report["model"], report["rows"], report["batch_size"]) == ("1x16 MLP", 600, 128)
