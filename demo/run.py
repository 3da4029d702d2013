"""``python -m demo``: the main job on the embedded default (local files, sqlite MLflow).

Generates the sample dataset, then runs each step's entry point as its own process, exactly as a
pod would (flags in, ``return.json`` out): validate → preprocess → a sweep of trainer configs →
pick the best on validation → evaluate → deploy, and prints a summary."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contract.selection import select_best
from contract.xcom import ResultError, read_result
from demo.sample_data import TARGET, generate

SWEEP: list[dict[str, str]] = [
    {"lr": "0.001", "batch-size": "512", "optimizer": "adamw", "width": "256", "depth": "3"},
    {"lr": "0.003", "batch-size": "1024", "optimizer": "adamw", "width": "256", "depth": "2"},
    {"lr": "0.001", "batch-size": "1024", "optimizer": "adam", "width": "128", "depth": "3"},
    {"lr": "0.05", "batch-size": "1024", "optimizer": "sgd", "width": "256", "depth": "3"},
]


class Pipeline:
    """Runs steps as subprocesses under a run-scoped folder ``<home>/runs/<run_id>/<step>/``."""

    def __init__(self, home: Path, run_id: str) -> None:
        self.home = home
        self.run_root = home / "runs" / run_id
        self.env = {**os.environ, "PIPELINE_HOME": str(home), "PYTHONUNBUFFERED": "1"}

    def folder(self, step: str) -> Path:
        return self.run_root / step

    def run(self, step: str, module: str, args: list[str], task: str | None = None) -> Any:
        """Run one step; its result, or None when it failed (its output is shown)."""
        task = task or step
        xcom = self.folder(task) / "xcom" / "return.json"
        env = {**self.env, "XCOM_RETURN_PATH": str(xcom)}
        print(f"\n==> {task}: python -m {module} {' '.join(args)}", flush=True)
        log = self.folder(task) / "log.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as fh:
            proc = subprocess.run(
                [sys.executable, "-m", module, *args],
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if proc.returncode != 0:
            print(log.read_text()[-3000:], file=sys.stderr)
            print(f"    {task} failed (exit {proc.returncode}); log: {log}")
            return None
        result = read_result(step, xcom)
        print(f"    ok; log: {log}")
        return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--home", default=".demo", help="local root (PIPELINE_HOME)")
    parser.add_argument("--rows", type=int, default=60_000, help="sample dataset size")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per sweep trial")
    parser.add_argument("--model-name", default="demo-classifier", help="registered model")
    args = parser.parse_args(argv)
    home = Path(args.home).resolve()
    date = dt.date.today().isoformat()
    pipeline = Pipeline(home, dt.datetime.now().strftime("%Y%m%dT%H%M%S"))

    source = home / "data" / "sample.parquet"
    source.parent.mkdir(parents=True, exist_ok=True)
    generate(args.rows).to_parquet(source, index=False)
    print(f"sample dataset: {args.rows} rows -> {source}")

    validated = pipeline.run(
        "validate",
        "preprocess.validate",
        [
            "--source",
            str(source),
            "--target",
            TARGET,
            "--date",
            date,
            "--output",
            str(pipeline.folder("validate")),
        ],
    )
    if validated is None:
        return 1
    data = str(pipeline.folder("preprocess"))
    if (
        pipeline.run(
            "preprocess",
            "preprocess",
            ["--input", str(source), "--output", data, "--target", TARGET],
        )
        is None
    ):
        return 1
    trials = [
        pipeline.run(
            "train",
            "trainer",
            [
                "--data-path",
                data,
                "--experiment-name",
                f"{args.model_name}-{date}",
                "--epochs",
                str(args.epochs),
                "--seed",
                "0",
                *[item for key, value in config.items() for item in (f"--{key}", value)],
            ],
            task=f"train-{i}",
        )
        for i, config in enumerate(SWEEP)
    ]
    try:
        best = select_best(trials)
    except ResultError as exc:
        print(f"sweep failed: {exc}", file=sys.stderr)
        return 1
    decision = pipeline.run(
        "evaluate",
        "evaluator",
        [
            "--run-id",
            best["run_id"],
            "--data-path",
            data,
            "--model-name",
            args.model_name,
            "--min-accuracy",
            "0.7",
        ],
    )
    if decision is None:
        return 1
    deployed = None
    if decision["should_deploy"]:
        deployed = pipeline.run(
            "deploy", "deployer", ["--run-id", best["run_id"], "--model-name", args.model_name]
        )
        if deployed is None:
            return 1
    print_summary(trials, best, decision, deployed, home)
    return 0


def print_summary(
    trials: list[Any],
    best: dict[str, Any],
    decision: dict[str, Any],
    deployed: dict[str, Any] | None,
    home: Path,
) -> None:
    print("\nSweep (metrics on the validation split):")
    print(
        f"  {'#':<2} {'optimizer':<9} {'lr':>7} {'batch':>6} {'width':>5} {'depth':>5} "
        f"{'accuracy':>9} {'f1':>7} {'loss':>7} {'samples/s':>10}  run"
    )
    for i, trial in enumerate(trials):
        config = SWEEP[i]
        head = (
            f"  {i:<2} {config['optimizer']:<9} {config['lr']:>7} {config['batch-size']:>6} "
            f"{config['width']:>5} {config['depth']:>5} "
        )
        if trial is None:
            print(head + "failed")
            continue
        mark = "  <- best" if trial["run_id"] == best["run_id"] else ""
        print(
            head + f"{trial['accuracy']:>9.4f} {trial['f1_score']:>7.4f} {trial['loss']:>7.4f} "
            f"{trial['samples_per_sec']:>10.0f}  {trial['run_id'][:8]}{mark}"
        )
    baseline = decision["baseline_accuracy"]
    print(
        f"\nEvaluation on the test split: candidate accuracy {decision['new_accuracy']:.4f}, "
        f"champion {'none' if baseline is None else f'{baseline:.4f}'} -> "
        f"{'deploy' if decision['should_deploy'] else 'keep champion'} ({decision['reason']})"
    )
    if deployed:
        print(
            f"Deployed: {deployed['model_name']} v{deployed['version']} is now "
            f"@{deployed['alias']} (previous: {deployed['previous_version']})"
        )
    print(
        "\nOpen the MLflow UI with:\n"
        f"  .venv/bin/mlflow ui --backend-store-uri sqlite:///{home}/mlflow/mlflow.db "
        f"--port 5000\n  then browse http://127.0.0.1:5000"
    )
