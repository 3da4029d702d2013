"""What the trainer's MLflow logging costs, against a real ``mlflow server`` on loopback, in one
run with the same model and data:

* ``none``: the training loop alone (``trainer.loop.fit``), no MLflow at all;
* ``metrics``: inside an MLflow run, one asynchronous ``log_batch`` per epoch (the trainer's
  ``MetricLogger``), flushed before the clock stops;
* ``metrics+system``: the same plus MLflow's system-metrics sampler at the trainer's default
  interval (what ``python -m trainer`` does).

Overhead = median wall time of a mode / median wall time of ``none`` - 1; the modes alternate
within each repeat, in an order that rotates between repeats, so that drift in the machine's
speed hits them alike. On a small shared
machine that difference is noisier than the effect, so each logging mode also reports the time
the training thread itself spent in MLflow calls (starting the run, handing each epoch's batch
to the sender, the final flush and ending the run) as a share of its wall time: the part of the
overhead that does not depend on other load (the sender thread and the loopback server run on
the same cores here; in a cluster the server is elsewhere).

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
from unittest import mock

import torch

from bench.train_throughput import CARDINALITIES, CLASSES, NUMERIC, synthetic
from common.tracking import configure_mlflow, ensure_experiment
from tabular_model.network import NetworkConfig, TabularMLP
from tools.servers import running_mlflow_server
from trainer.cli import build_parser as trainer_parser
from trainer.loop import EpochRecord, LoopCallbacks, LoopConfig, fit
from trainer.mlflow_run import MetricLogger, training_run

MODES = ("none", "metrics", "metrics+system")


def train_once(mode: str, args: argparse.Namespace, experiment_id: str) -> tuple[float, float]:
    """Seconds for one training of ``args.epochs`` epochs in ``mode``, and of those the seconds
    the training thread spent in MLflow calls."""
    train = synthetic(args.rows, torch.device("cpu"))
    val = synthetic(args.rows // 5, torch.device("cpu"), seed=1)
    torch.manual_seed(0)
    net = TabularMLP(NetworkConfig(NUMERIC, CARDINALITIES, CLASSES, args.width, args.depth, 0.1))
    # The trainer's defaults, but every epoch runs (no early stop).
    config = LoopConfig(batch_size=args.batch_size, epochs=args.epochs, patience=args.epochs)
    started = time.perf_counter()
    if mode == "none":
        fit(net, train, val, config)
        return time.perf_counter() - started, 0.0
    interval = args.system_metrics_interval if mode == "metrics+system" else 0.0
    in_epochs = 0.0
    with training_run(experiment_id, None, interval) as run:
        logger = MetricLogger(run.info.run_id)
        at_start = time.perf_counter() - started  # start_run, the sampler, the sender

        def on_epoch(record: EpochRecord) -> None:
            nonlocal in_epochs
            handed = time.perf_counter()
            logger.epoch(record)
            in_epochs += time.perf_counter() - handed

        fit(net, train, val, config, callbacks=LoopCallbacks(on_epoch=on_epoch))
        trained = time.perf_counter()
        logger.flush()
    wall = time.perf_counter() - started
    at_end = wall - (trained - started)  # flush and end_run
    return wall, at_start + in_epochs + at_end


def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Median seconds per mode against a fresh loopback server: wall time and the training
    thread's time in MLflow calls."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_mlflow_server(Path(tmp) / "mlflow") as server,
        mock.patch.dict(os.environ, {"MLFLOW_TRACKING_URI": server.uri}),
    ):
        configure_mlflow()
        experiment_id = ensure_experiment("bench-mlflow-overhead")
        train_once("metrics", args, experiment_id)  # warm-up: imports, first connections
        samples: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
        for repeat in range(args.repeats):
            # The order rotates between repeats, so no mode always runs first (or last).
            for mode in MODES[repeat % len(MODES) :] + MODES[: repeat % len(MODES)]:
                samples[mode].append(train_once(mode, args, experiment_id))
    return {
        mode: {
            "wall": statistics.median(wall for wall, _ in values),
            "in_mlflow": statistics.median(blocked for _, blocked in values),
        }
        for mode, values in samples.items()
    }


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
    base = medians["none"]["wall"]
    overhead = {mode: medians[mode]["wall"] / base - 1 for mode in MODES[1:]}
    in_mlflow = {mode: medians[mode]["in_mlflow"] / medians[mode]["wall"] for mode in MODES[1:]}
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rows": args.rows,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "seconds": medians,
        "overhead": overhead,
        "training_thread_in_mlflow": in_mlflow,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.rows} rows x {args.epochs} epochs, median of {args.repeats}, {report['machine']}")
    print("| mode | seconds | overhead | training thread in MLflow calls |\n|---|---|---|---|")
    for mode in MODES:
        extra = "baseline | -"
        if mode in overhead:
            spent = medians[mode]["in_mlflow"]
            extra = f"{overhead[mode]:+.2%} | {spent:.3f} s ({in_mlflow[mode]:.2%})"
        print(f"| {mode} | {medians[mode]['wall']:.2f} | {extra} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
