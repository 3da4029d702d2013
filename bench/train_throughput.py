"""Training throughput of the trainer's loop against two baselines, same model and data, one run:

* naive: ``DataLoader(TensorDataset)`` with per-sample collation, fp32 (what most published
  tabular PyTorch code does);
* compute-only: one batch already on the device reused every step, no data movement at all
  (the machine's limit for this model).

``python -m bench.train_throughput [--rows N --width W --depth D --batch-size B --device D]``
prints a table and, with ``--json``, the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tabular_model.network import NetworkConfig, TabularMLP
from trainer.loop import LoopConfig, TensorSplit, make_optimization, train_epoch

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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.train_throughput", description=__doc__)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    data = synthetic(args.rows, device)
    net = TabularMLP(NetworkConfig(NUMERIC, CARDINALITIES, CLASSES, args.width, args.depth, 0.0))
    net.to(device)
    # The trainer's default training control: cosine schedule with warmup, gradient clipping.
    config = LoopConfig(
        1e-3, args.batch_size, "adamw", 1, 0.0, 1, 0, "cosine", warmup_epochs=0.1, grad_clip=1.0
    )
    optimization = make_optimization(net, data, config)
    optimizer = optimization.optimizer
    generator = torch.Generator(device=device).manual_seed(0)

    def ours() -> int:
        train_epoch(net, optimization, data, config, generator)
        return data.rows

    loader = DataLoader(
        TensorDataset(data.numeric.cpu(), data.categorical.cpu(), data.target.cpu()),
        batch_size=args.batch_size,
        shuffle=True,
    )

    def naive() -> int:
        net.train()
        for numeric, categorical, target in loader:
            numeric, categorical, target = (t.to(device) for t in (numeric, categorical, target))
            loss = nn.functional.cross_entropy(net(numeric, categorical), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return data.rows

    one = slice(0, args.batch_size)
    batch = (data.numeric[one], data.categorical[one], data.target[one])
    steps = -(-data.rows // args.batch_size)

    def compute_only() -> int:
        net.train()
        for _ in range(steps):
            loss = nn.functional.cross_entropy(net(batch[0], batch[1]), batch[2])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return steps * args.batch_size

    results = {
        "ours": timed(ours, device, args.repeats),
        "naive_dataloader": timed(naive, device, args.repeats),
        "compute_only": timed(compute_only, device, args.repeats),
    }
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
