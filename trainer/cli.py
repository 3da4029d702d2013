"""``python -m trainer``: train the tabular MLP on a preprocess output and log it to MLflow.
The preprocess output's task decides what is trained: a classifier (accuracy, F1, log loss) or
a regression (RMSE, MAE, R² in the target's units). Every reported metric is measured on the
validation split; the test split is left to the evaluator."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from common.step import StepArgumentParser, UsageError, run_step, script_name
from tabular_model.model_config import NUMERIC_EMBEDDINGS, ModelConfig, SettingError
from trainer.loop_config import (
    AUTO_BATCH_RANGE,
    AUTO_EPOCH_RANGE,
    AUTO_ROWS_PER_STEP,
    AUTO_STEPS,
    CLASS_WEIGHTS,
    LOSSES,
    LR_SCHEDULES,
    OPTIMIZERS,
    LoopConfig,
)
from trainer.run_options import (
    DATA_PLACEMENTS,
    DEVICES,
    RunOptions,
    Tracking,
    settings_name,
    tag_pair,
)

if TYPE_CHECKING:
    from contract.results import TrainResult
    from trainer.job import TrainConfig

# The parser needs only the config dataclasses (no torch): the job, which imports torch, MLflow
# and pandas, is imported once the flags are parsed, so --help and usage errors are quick.
PROG = "python -m trainer"

# The argument groups holding exactly the flags a hyperparameter sweep may set; every flag in
# them has a type (or string choices) and a default, so the groups describe the search space.
SWEEPABLE_GROUPS = ("model", "optimisation")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The trainer's flags in argument groups, their defaults those of the config dataclasses;
    the groups named in SWEEPABLE_GROUPS hold exactly the flags a sweep may set. ``prog``: the
    command in the usage line."""
    p = StepArgumentParser(prog=prog, description=__doc__)
    data = p.add_argument_group("data and tracking", "what to train on, where the run is logged")
    data.add_argument(
        "--data-path",
        required=True,
        metavar="URI",
        help="the --output folder of preprocess (local, file:// or s3://)",
    )
    data.add_argument(
        "--experiment-name",
        required=True,
        metavar="NAME",
        help="MLflow experiment: one per model (the DAG uses the model's name)",
    )
    data.add_argument(
        "--run-name",
        metavar="NAME",
        help="the MLflow run's name (default: the settings that differ from the defaults, "
        "e.g. 'lr=0.003 numeric_embedding=ple', or 'defaults')",
    )
    data.add_argument(
        "--tag",
        type=tag_pair,
        action="append",
        default=[],
        dest="tags",
        metavar="KEY=VALUE",
        help="an MLflow tag of the run, e.g. data_date=2026-12-01; repeat for more",
    )
    add_model_flags(p)
    add_optimisation_flags(p)
    add_run_flags(p)
    add_operation_flags(p)
    return p


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """The architecture (``ModelConfig``); a sweep may set these."""
    model = ModelConfig()
    g = p.add_argument_group("model", "the network's architecture")
    add_size_flag(g, model, "width", "hidden layer width")
    add_size_flag(g, model, "depth", "hidden layers")
    g.add_argument(
        "--dropout", type=float, default=model.dropout, metavar="RATE", help="dropout rate"
    )
    g.add_argument(
        "--numeric-embedding",
        type=str,
        choices=NUMERIC_EMBEDDINGS,
        default=model.numeric_embedding,
        help="embed each numeric feature: periodic (PLR) or ple (piecewise-linear, bins from "
        "training quantiles); none feeds them to the MLP as they are; ple+periodic trains two "
        "networks side by side, one with each embedding, and averages their predictions",
    )
    add_size_flag(g, model, "embedding_dim", "size of each numeric feature's embedding")
    g.add_argument(
        "--periodic-sigma",
        type=float,
        default=model.periodic_sigma,
        metavar="FLOAT",
        help="std of the initial periodic frequencies (scale of the standardised features)",
    )
    add_size_flag(g, model, "ple_bins", "piecewise-linear bins per feature")
    add_size_flag(
        g, model, "ensemble_size", "members of a TabM-mini ensemble sharing the MLP; 1: one MLP"
    )


def add_size_flag(
    group: argparse._ArgumentGroup,
    config: ModelConfig | LoopConfig,
    name: str,
    text: str,
    auto: str = "",
) -> None:
    """The integer flag of ``config``'s field ``name``, its default that field's value and its
    help ``text`` with the range (1 to the limit the config checks; from 0 with ``auto``, the
    help's words on what 0 means)."""
    low = 0 if auto else 1
    group.add_argument(
        "--" + name.replace("_", "-"),
        type=int,
        default=getattr(config, name),
        metavar="N",
        help=f"{text} ({low} to {config.LIMITS[name]}){auto}",
    )


def add_optimisation_flags(p: argparse.ArgumentParser) -> None:
    """The optimisation (``LoopConfig`` but its seed); a sweep may set these."""
    loop = LoopConfig()
    g = p.add_argument_group("optimisation", "how the network is trained")
    g.add_argument("--lr", type=float, default=loop.lr, metavar="FLOAT", help="learning rate")
    low, high = AUTO_BATCH_RANGE
    add_size_flag(
        g,
        loop,
        "batch_size",
        "training batch size",
        f"; 0: auto, the largest power of two at most training rows / {AUTO_ROWS_PER_STEP}, "
        f"within {low} to {high}",
    )
    g.add_argument(
        "--optimizer", type=str, choices=OPTIMIZERS, default=loop.optimizer, help="optimizer"
    )
    low, high = AUTO_EPOCH_RANGE
    add_size_flag(
        g,
        loop,
        "epochs",
        "maximum epochs",
        f"; 0: auto, enough for about {AUTO_STEPS} optimiser steps, within {low} to {high}",
    )
    g.add_argument(
        "--patience",
        type=int,
        default=loop.patience,
        metavar="EPOCHS",
        help="early-stopping patience (epochs)",
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        default=loop.weight_decay,
        metavar="FLOAT",
        help="weight decay",
    )
    g.add_argument(
        "--lr-schedule",
        type=str,
        choices=LR_SCHEDULES,
        default=loop.lr_schedule,
        help="after the warmup",
    )
    g.add_argument(
        "--warmup-epochs",
        type=float,
        default=loop.warmup_epochs,
        metavar="EPOCHS",
        help="linear learning-rate warmup (epochs)",
    )
    g.add_argument(
        "--grad-clip",
        type=float,
        default=loop.grad_clip,
        metavar="NORM",
        help="max gradient norm; 0: off",
    )
    g.add_argument(
        "--ema-decay",
        type=float,
        default=loop.ema_decay,
        metavar="FLOAT",
        help="the weights validated, early-stopped and saved are an exponential moving average "
        "of the trained ones, updated every step with this decay (0 to <1; 0: the trained "
        "weights)",
    )
    g.add_argument(
        "--class-weights",
        type=str,
        choices=CLASS_WEIGHTS,
        default=loop.class_weights,
        help="balanced: every class weighs the same in the loss (imbalanced labels; "
        "classification only)",
    )
    g.add_argument(
        "--label-smoothing",
        type=float,
        default=loop.label_smoothing,
        metavar="FLOAT",
        help="share of each training target spread evenly over the classes (0 to <1; "
        "classification only: a regression ignores the default and refuses other values)",
    )
    g.add_argument(
        "--loss",
        type=str,
        choices=LOSSES,
        default=loop.loss,
        help="training loss of a regression target (standardised): mse, or huber (delta 1), "
        "less swayed by outliers; auto: mse for regression, cross-entropy for classification "
        "(the only value a classification accepts)",
    )


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """Seed, determinism, device and torch.compile: not searched over by a sweep."""
    options = RunOptions()
    g = p.add_argument_group("run", "seed, device and kernels of this run")
    g.add_argument(
        "--seed",
        type=int,
        default=LoopConfig().seed,
        metavar="N",
        help="seed of initialisation and shuffling",
    )
    g.add_argument(
        "--deterministic",
        action="store_true",
        default=options.deterministic,
        help="deterministic algorithms only (same result on every run; slower on CUDA)",
    )
    g.add_argument(
        "--device", choices=DEVICES, default=options.device, help="auto uses CUDA when present"
    )
    g.add_argument(
        "--compile",
        action="store_true",
        default=options.compile,
        help="torch.compile the network for training (first epoch slower; needs a C++ compiler "
        "on CPU)",
    )


def add_operation_flags(p: argparse.ArgumentParser) -> None:
    """Checkpoints, MLflow system metrics and data placement: how a run is carried out, not
    what it computes (not hyperparameters)."""
    options = RunOptions()
    g = p.add_argument_group("operation", "checkpoints, system metrics, data placement")
    g.add_argument(
        "--checkpoint-dir",
        default=options.checkpoint_dir,
        metavar="URI",
        help="checkpoint folder (local, file://, s3://); the run resumes from its latest "
        "checkpoint. Default: $PIPELINE_HOME/checkpoints/<hash of experiment, data, config>",
    )
    g.add_argument(
        "--checkpoint-every-epochs",
        type=int,
        default=options.checkpoint_every_epochs,
        metavar="N",
        help="checkpoint every N epochs; 0: off",
    )
    g.add_argument(
        "--checkpoint-every-minutes",
        type=float,
        default=options.checkpoint_every_minutes,
        metavar="MINUTES",
        help="also checkpoint every MINUTES, mid-epoch if need be; 0: off",
    )
    g.add_argument(
        "--system-metrics-interval",
        type=float,
        default=options.system_metrics_interval,
        metavar="SECONDS",
        help="seconds between MLflow system metrics samples (CPU, memory, GPU); 0: off",
    )
    g.add_argument(
        "--data-placement",
        choices=DATA_PLACEMENTS,
        default=options.data_placement,
        help="device: training data resident on the device; stream: in host memory, copied "
        "in chunks; auto: stream when it would not fit in half the free GPU memory",
    )


def flag_values(args: argparse.Namespace, config_class: type[Any]) -> dict[str, Any]:
    """The parsed flags named like the fields of the dataclass ``config_class``."""
    return {f.name: getattr(args, f.name) for f in fields(config_class)}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The resolved config of parsed flags; a value out of its range (NaN and infinity included)
    is a ``UsageError`` that names the flag (``--width must be positive, got 0``)."""
    from trainer.job import TrainConfig

    try:
        model = ModelConfig(**flag_values(args, ModelConfig))
        loop = LoopConfig(**flag_values(args, LoopConfig))
        run_name = args.run_name if args.run_name is not None else settings_name(model, loop)
        return TrainConfig(
            data_path=args.data_path.rstrip("/"),
            experiment_name=args.experiment_name,
            model=model,
            loop=loop,
            options=RunOptions(**flag_values(args, RunOptions)),
            tracking=Tracking(run_name, tuple(args.tags)),
        )
    except SettingError as exc:
        flag = "--" + exc.setting.replace("_", "-")
        raise UsageError(f"{flag} {exc.problem}") from exc


def run(args: argparse.Namespace) -> TrainResult | None:
    """Train as the parsed flags say (None: a data-parallel rank that writes no result)."""
    from trainer.job import train

    return train(config_from_args(args))


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    return run_step("train", build_parser(prog), run, argv)


def main_entry() -> None:
    """The ``tabular-train`` console script."""
    raise SystemExit(main(prog=script_name()))
