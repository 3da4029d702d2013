"""Test accuracy of the trainer's MLP with each numeric embedding (none, periodic, ple) against
sklearn's HistGradientBoostingClassifier, on the same splits with fixed seeds.

Datasets (nothing is downloaded): the project's sample data (``demo.sample_data``) and sklearn's
bundled real datasets breast_cancer, digits and wine. Every dataset goes through the real
pipeline: ``python -m preprocess`` (its ``main``, with the seed as split seed) writes the splits,
the trainer's own parser resolves the flags (its defaults, ``BENCH_FLAGS``, then
``--trainer-flags``) and ``trainer.loop.fit`` trains the network the trainer builds, early-stopped
on the val split; the test split scores each model.
HistGradientBoosting sees the same encoded features (categorical codes as categories).

``python -m bench.accuracy [--quick] [--seeds N] [--datasets a,b] [--models m,n]
[--trainer-flags "--epochs 30 --periodic-sigma 0.3"] [--json]``
prints a markdown table (mean ± std of test accuracy over seeds) and, with ``--json``, every
run as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch

from common import dataset
from common.metrics import classification_metrics
from tabular_model.network import NUMERIC_EMBEDDINGS, predict_proba
from trainer.loop import fit

TARGET = "target"
MODELS = (*NUMERIC_EMBEDDINGS, "hgb")
# The trainer's defaults suit large data (batch 1024); the bundled datasets have a few hundred to
# a few thousand training rows, so smaller batches and more epochs give every model enough steps.
BENCH_FLAGS = ("--batch-size", "128", "--epochs", "40", "--patience", "8")
DATASETS = ("sample", "breast_cancer", "digits", "wine")


@dataclass(frozen=True)
class Score:
    dataset: str
    model: str
    seed: int
    accuracy: float
    seconds: float


def load_frame(name: str, sample_rows: int) -> pd.DataFrame:
    """The raw table of a dataset with its label in column ``target``."""
    if name == "sample":
        from demo.sample_data import TARGET as SAMPLE_TARGET
        from demo.sample_data import generate

        return generate(sample_rows, seed=7).rename(columns={SAMPLE_TARGET: TARGET})
    from sklearn import datasets

    loaders: dict[str, Callable[..., object]] = {
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
    }
    frame = loaders[name](as_frame=True).frame  # type: ignore[attr-defined]
    return frame.rename(columns=lambda c: str(c).replace(" ", "_"))  # type: ignore[no-any-return]


def preprocessed(frame: pd.DataFrame, folder: Path, seed: int) -> str:
    """Run the preprocess step on ``frame`` (split seed ``seed``); returns its output folder."""
    from preprocess.cli import main

    source, output = folder / "raw.parquet", folder / "processed"
    frame.to_parquet(source, index=False)
    # The step's XCom result stays in the scratch folder; its log lines would drown the table.
    env = {"XCOM_RETURN_PATH": str(folder / "return.json"), "LOG_LEVEL": "WARNING"}
    with mock.patch.dict(os.environ, env):
        argv = ["--input", str(source), "--output", str(output), "--target", TARGET]
        if main([*argv, "--seed", str(seed)]) != 0:
            raise SystemExit(f"preprocess failed on {source}")
    return str(output)


def mlp_accuracy(
    data: str, embedding: str, seed: int, flags: Sequence[str], device: torch.device
) -> float:
    """Train the trainer's network (its flags' defaults, ``flags``, this embedding and seed) on
    the train split, early-stopped on val; returns the test accuracy."""
    from trainer.cli import build_parser, config_from_args
    from trainer.job import build_network, load_tensors

    argv = ["--data-path", data, "--experiment-name", "bench", "--device", device.type, *flags]
    argv += ["--numeric-embedding", embedding, "--seed", str(seed)]
    config = config_from_args(build_parser().parse_args(argv))
    transform = dataset.load_transform(data)
    splits = {s: load_tensors(data, s, transform, device) for s in dataset.SPLITS}
    net = build_network(config, transform, splits["train"]).to(device)
    fit(net, splits["train"], splits["val"], config.loop)
    test = splits["test"]
    probabilities = predict_proba(net, test.numeric, test.categorical).cpu().numpy()
    return classification_metrics(probabilities, test.target.cpu().numpy()).accuracy


def hgb_accuracy(data: str, seed: int) -> float:
    """HistGradientBoosting on the same encoded rows: fit on train, early-stopped on val."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    transform = dataset.load_transform(data)
    parts = {s: dataset.load_split(data, transform, s) for s in dataset.SPLITS}

    def features(split: dataset.EncodedSplit) -> np.ndarray:
        return np.hstack([split.numeric, split.categorical.astype("float32")])

    numeric = parts["train"].numeric.shape[1]
    # Codes beyond HGB's 255 categories are left as ordered numbers.
    categorical = [numeric + i for i, c in enumerate(transform.categorical) if c.cardinality <= 255]
    model = HistGradientBoostingClassifier(
        categorical_features=categorical or None, early_stopping=True, random_state=seed
    )
    train, val = parts["train"], parts["val"]
    model.fit(features(train), train.target, X_val=features(val), y_val=val.target)
    predicted = model.predict(features(parts["test"]))
    return float((predicted == parts["test"].target).mean())


def score_dataset(name: str, args: argparse.Namespace, flags: Sequence[str]) -> list[Score]:
    """Every model on every seed's split of one dataset."""
    frame = load_frame(name, args.sample_rows)
    scores = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
            data = preprocessed(frame, Path(tmp), seed)
            for model in args.models:
                torch.manual_seed(seed)
                started = time.perf_counter()
                if model == "hgb":
                    accuracy = hgb_accuracy(data, seed)
                else:
                    accuracy = mlp_accuracy(data, model, seed, flags, args.device)
                seconds = time.perf_counter() - started
                scores.append(Score(name, model, seed, accuracy, seconds))
                print(f"  {name} seed {seed} {model}: {accuracy:.4f} ({seconds:.1f} s)", flush=True)
    return scores


def markdown(scores: list[Score], datasets: Sequence[str], models: Sequence[str]) -> str:
    """Mean ± std of test accuracy per dataset (rows) and model (columns), mean seconds last."""
    lines = [
        "| dataset | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for name in datasets:
        cells = []
        for model in models:
            runs = [s for s in scores if s.dataset == name and s.model == model]
            values = [s.accuracy for s in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            seconds = statistics.mean(s.seconds for s in runs)
            cells.append(f"{statistics.mean(values):.4f} ± {spread:.4f} ({seconds:.1f} s)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small data, one seed, few epochs")
    p.add_argument("--seeds", type=int, default=3, help="split and training seeds 0..N-1")
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    p.add_argument("--sample-rows", type=int, default=20_000, help="rows of the sample data")
    p.add_argument(
        "--trainer-flags", default="", help='extra trainer flags, e.g. "--epochs 30 --lr 3e-3"'
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0: torch's choice")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="MLP device")
    p.add_argument("--json", action="store_true", help="print every run as JSON too")
    args = p.parse_args(argv)
    args.device = torch.device(args.device)
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.models = [m for m in args.models.split(",") if m]
    for flag, known in (("models", MODELS), ("datasets", DATASETS)):
        unknown = [v for v in getattr(args, flag) if v not in known]
        if unknown or not getattr(args, flag):
            p.error(f"--{flag}: unknown {unknown}; choose from {', '.join(known)}")
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    if args.quick:
        args.seeds, args.sample_rows = 1, min(args.sample_rows, 3000)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Later flags win: the bench's own, then --quick's, then the user's.
    flags = [
        *BENCH_FLAGS,
        *(["--epochs", "3"] if args.quick else []),
        *shlex.split(args.trainer_flags),
    ]
    if args.threads:
        torch.set_num_threads(args.threads)
    scores = [s for name in args.datasets for s in score_dataset(name, args, flags)]
    print(f"\nTest accuracy, {args.seeds} seed(s), trainer flags: {' '.join(flags) or 'defaults'}")
    print(
        f"({platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads)\n"
    )
    print(markdown(scores, args.datasets, args.models))
    if args.json:
        print(json.dumps({"trainer_flags": flags, "runs": [asdict(s) for s in scores]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
