"""Training throughput of the trainer's loop against two baselines, same model and data, one run:

* ours: one epoch of the loop ``python -m trainer`` runs (``trainer.loop.Training``, the class
  ``fit`` trains with: shuffled device-resident batches, bf16 autocast on CUDA, the trainer's
  default optimizer, learning-rate schedule and gradient clipping), timed without validation;
* naive: ``DataLoader(TensorDataset)`` with per-sample collation, fp32 (what most published
  tabular PyTorch code does);
* compute-only: one batch already on the device reused every step, no data movement at all
  (the machine's limit for this model).

``python -m bench.train_throughput [--rows N --width W --depth D --batch-size B --device D]``
prints a table and, with ``--json``, the numbers as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tabular_model.network import NetworkConfig, TabularMLP
from trainer.loop import LoopCallbacks, LoopConfig, LoopRuntime, TensorSplit, Training

NUMERIC, CARDINALITIES, CLASSES = 40, (12, 30, 8, 100, 5, 20, 50, 7, 15, 9), 2


def synthetic(rows: int, device: torch.device, seed: int = 0) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    numeric = torch.randn(rows, NUMERIC, generator=g)
    categorical = torch.stack([torch.randint(0, c, (rows,), generator=g) for c in CARDINALITIES], 1)
    target = (numeric[:, :5].sum(1) + (categorical[:, 0] % 3) > 0).long()
    return TensorSplit(numeric.to(device), categorical.to(device), target.to(device))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], int], device: torch.device, repeats: int) -> float:
    """Best samples/s over ``repeats`` runs of ``fn`` (which returns the samples it processed)."""
    fn()  # warm-up
    best = 0.0
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        samples = fn()
        sync(device)
        best = max(best, samples / (time.perf_counter() - started))
    return best


def trainer_epoch(net: TabularMLP, data: TensorSplit, batch_size: int, repeats: int) -> Training:
    """What ``fit`` would train ``net`` on ``data`` with, under the trainer's defaults but the
    batch size; enough epochs that the cosine schedule has not run the learning rate down to
    zero by the last timed one (the warm-up and ``repeats`` epochs)."""
    config = LoopConfig(batch_size=batch_size, epochs=max(LoopConfig().epochs, repeats + 1))
    return Training(net, data, data, config, LoopRuntime(), LoopCallbacks())


def baselines(
    net: TabularMLP, optimizer: torch.optim.Optimizer, data: TensorSplit, batch_size: int
) -> dict[str, Callable[[], int]]:
    """The naive DataLoader loop and the compute-only loop over ``data`` (device-resident),
    each a callable that trains one epoch's worth of steps and returns its samples."""
    device = data.target.device
    loader = DataLoader(
        TensorDataset(data.numeric.cpu(), data.categorical.cpu(), data.target.cpu()),
        batch_size=batch_size,
        shuffle=True,
    )
    one = slice(0, batch_size)
    batch = (data.numeric[one], data.categorical[one], data.target[one])
    steps = -(-data.rows // batch_size)

    def step(numeric: torch.Tensor, categorical: torch.Tensor, target: torch.Tensor) -> None:
        loss = nn.functional.cross_entropy(net(numeric, categorical), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def naive() -> int:
        net.train()
        for numeric, categorical, target in loader:
            step(*(t.to(device) for t in (numeric, categorical, target)))
        return data.rows

    def compute_only() -> int:
        net.train()
        for _ in range(steps):
            step(*batch)
        return steps * batch_size

    return {"naive_dataloader": naive, "compute_only": compute_only}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.train_throughput", description=__doc__)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Best samples/s of ours and of each baseline, on the same network and data."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    data = synthetic(args.rows, device)
    net = TabularMLP(NetworkConfig(NUMERIC, CARDINALITIES, CLASSES, args.width, args.depth, 0.0))
    net.to(device)
    training = trainer_epoch(net, data, args.batch_size, args.repeats)
    epochs = itertools.count(1)

    def ours() -> int:
        training.run_epoch(next(epochs))
        return data.rows

    loops = {"ours": ours, **baselines(net, training.optimization.optimizer, data, args.batch_size)}
    return {name: timed(loop, device, args.repeats) for name, loop in loops.items()}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = measure(args)
    device = torch.device(args.device)
    report = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "model": f"{args.depth}x{args.width} MLP",
        "batch_size": args.batch_size,
        "rows": args.rows,
        "samples_per_sec": {k: round(v) for k, v in results.items()},
        "ours_vs_naive": round(results["ours"] / results["naive_dataloader"], 2),
        "ours_vs_compute_only": round(results["ours"] / results["compute_only"], 3),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['model']}, batch {args.batch_size}, {args.rows} rows on {report['device']}")
        for name, value in report["samples_per_sec"].items():
            print(f"  {name:<18} {value:>12,} samples/s")
        print(
            f"  ours / naive = {report['ours_vs_naive']}x, "
            f"ours / compute-only = {report['ours_vs_compute_only']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
