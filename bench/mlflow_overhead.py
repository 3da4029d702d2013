"""What the trainer's MLflow logging costs, against a real ``mlflow server`` on loopback, in one
run with the same model and data:

* ``none``: the training loop alone (``trainer.loop.fit``), no MLflow at all;
* ``metrics``: inside an MLflow run, one asynchronous ``log_batch`` per epoch (the trainer's
  ``MetricLogger``), flushed before the clock stops;
* ``metrics+system``: the same plus MLflow's system-metrics sampler at the trainer's default
  interval (what ``python -m trainer`` does).

Overhead = median wall time of a mode / median wall time of ``none`` - 1; the modes alternate
within each repeat so that drift in the machine's speed hits them alike.

``python -m bench.mlflow_overhead [--rows N --epochs E --repeats R --json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.train_throughput import CARDINALITIES, CLASSES, NUMERIC, synthetic
from contract.tracking import configure_mlflow, ensure_experiment
from tests.mlflow_server import running_server
from trainer.cli import build_parser as trainer_parser
from trainer.loop import LoopConfig, LoopHooks, fit
from trainer.mlflow_run import MetricLogger, training_run
from trainer.network import NetworkConfig, TabularMLP

MODES = ("none", "metrics", "metrics+system")


def train_once(mode: str, args: argparse.Namespace, experiment_id: str) -> float:
    """Seconds for one training of ``args.epochs`` epochs in ``mode``."""
    train = synthetic(args.rows, torch.device("cpu"))
    val = synthetic(args.rows // 5, torch.device("cpu"), seed=1)
    torch.manual_seed(0)
    net = TabularMLP(NetworkConfig(NUMERIC, CARDINALITIES, CLASSES, args.width, args.depth, 0.1))
    config = LoopConfig(
        lr=1e-3,
        batch_size=args.batch_size,
        optimizer="adamw",
        epochs=args.epochs,
        weight_decay=1e-5,
        patience=args.epochs,
        seed=0,
    )
    started = time.perf_counter()
    if mode == "none":
        fit(net, train, val, config)
        return time.perf_counter() - started
    interval = args.system_metrics_interval if mode == "metrics+system" else 0.0
    with training_run(experiment_id, None, interval) as run:
        logger = MetricLogger(run.info.run_id)
        fit(net, train, val, config, LoopHooks(on_epoch=logger.epoch))
        logger.flush()
    return time.perf_counter() - started


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Median seconds per mode against a fresh loopback server."""
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "mlflow") as server:
        os.environ["MLFLOW_TRACKING_URI"] = server.uri
        configure_mlflow()
        experiment_id = ensure_experiment("bench-mlflow-overhead")
        train_once("metrics", args, experiment_id)  # warm-up: imports, first connections
        seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                seconds[mode].append(train_once(mode, args, experiment_id))
    return {mode: statistics.median(values) for mode, values in seconds.items()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mlflow_overhead", description=__doc__)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--system-metrics-interval",
        type=float,
        default=trainer_parser().get_default("system_metrics_interval"),
        help="seconds between system-metric samples (the trainer's default)",
    )
    p.add_argument("--quick", action="store_true", help="a small run that checks the bench works")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.epochs, args.repeats = 5_000, 2, 1
    medians = measure(args)
    overhead = {mode: medians[mode] / medians["none"] - 1 for mode in MODES[1:]}
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rows": args.rows,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "seconds": medians,
        "overhead": overhead,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.rows} rows x {args.epochs} epochs, median of {args.repeats}, {report['machine']}")
    print("| mode | seconds | overhead |\n|---|---|---|")
    for mode in MODES:
        extra = f"{overhead[mode]:+.2%}" if mode in overhead else "baseline"
        print(f"| {mode} | {medians[mode]:.2f} | {extra} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
