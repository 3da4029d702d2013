"""The trainer's flags: their groups (the sweepable ones hold exactly the model and optimisation
settings), defaults taken from the config dataclasses, the resolved config, the hyperparameters
and the messages that name a flag out of its range."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from common.step import UsageError
from tabular_model.network import ModelConfig
from trainer.cli import SWEEPABLE_GROUPS, build_parser, config_from_args, main
from trainer.job import RunOptions, TrainConfig, hyperparameters, with_budget
from trainer.loop import LoopConfig
from trainer.run_options import Tracking

REQUIRED = ["--data-path", "data/", "--experiment-name", "exp"]


def groups() -> dict[str, list[argparse.Action]]:
    """The parser's argument groups by title, each with its actions."""
    return {g.title or "": list(g._group_actions) for g in build_parser()._action_groups}


def config(*flags: str) -> TrainConfig:
    return config_from_args(build_parser().parse_args([*REQUIRED, *flags]))


def test_the_sweepable_groups_hold_exactly_the_model_and_optimisation_settings() -> None:
    by_title = groups()
    assert SWEEPABLE_GROUPS == ("model", "optimisation")
    model = [a.dest for a in by_title["model"]]
    optimisation = [a.dest for a in by_title["optimisation"]]
    assert model == [f.name for f in dataclasses.fields(ModelConfig)]
    assert sorted(optimisation) == sorted(
        f.name for f in dataclasses.fields(LoopConfig) if f.name != "seed"
    )


def test_every_sweepable_flag_has_a_type_a_default_and_help() -> None:
    for title in SWEEPABLE_GROUPS:
        for action in groups()[title]:
            assert action.type is not None, action.dest
            assert action.default is not None and action.help, action.dest
            if action.choices is not None:
                assert all(isinstance(c, str) for c in action.choices), action.dest
                assert action.default in action.choices, action.dest


def test_every_flag_is_in_a_named_group() -> None:
    by_title = groups()
    grouped = [a.dest for title, actions in by_title.items() if title != "options" for a in actions]
    assert [a.dest for a in by_title["options"]] == ["help"]
    assert sorted(grouped) == sorted(
        ["data_path", "experiment_name", "run_name", "tags", "seed"]
        + [f.name for f in dataclasses.fields(ModelConfig)]
        + [f.name for f in dataclasses.fields(LoopConfig) if f.name != "seed"]
        + [f.name for f in dataclasses.fields(RunOptions)]
    )


def test_flag_defaults_are_the_config_defaults() -> None:
    # the trailing slash is dropped; a run with every default is named so
    assert config() == TrainConfig("data", "exp", tracking=Tracking("defaults"))
    assert TrainConfig("data", "exp").options.checkpoint.every_minutes == 10.0


def test_flags_reach_their_config_fields() -> None:
    resolved = config(
        "--width", "64", "--ple-bins", "12", "--lr", "0.01", "--seed", "7", "--device", "cpu",
        "--compile", "--checkpoint-dir", "s3://b/c", "--checkpoint-every-minutes", "0",
    )  # fmt: skip
    assert (resolved.model.width, resolved.model.ple_bins) == (64, 12)
    assert (resolved.loop.lr, resolved.loop.seed) == (0.01, 7)
    assert (resolved.options.device, resolved.options.compile) == ("cpu", True)
    checkpoint = resolved.options.checkpoint
    assert (checkpoint.dir, checkpoint.every_epochs, checkpoint.every_minutes) == ("s3://b/c", 1, 0)


def test_hyperparameters_are_the_model_and_loop_settings_with_determinism_and_compile() -> None:
    assert hyperparameters(config("--deterministic")) == {
        "width": 256, "depth": 3, "dropout": 0.1, "deterministic": True, "lr": 1e-3,
        "batch_size": 0, "optimizer": "adamw", "epochs": 0, "weight_decay": 1e-5,
        "patience": 16, "seed": 0, "lr_schedule": "cosine", "warmup_epochs": 1.0,
        "grad_clip": 1.0, "class_weights": "none", "label_smoothing": 0.1, "ema_decay": 0.99,
        "numeric_embedding": "ple+periodic",
        "embedding_dim": 8, "periodic_sigma": 3.0, "ple_bins": 16, "ensemble_size": 1,
        "compile": False,
    }  # fmt: skip


def test_the_run_records_the_auto_budget_it_trains_with() -> None:
    auto = with_budget(config(), train_rows=2_000)
    assert (auto.loop.batch_size, auto.loop.epochs) == (128, 100)
    assert hyperparameters(auto)["batch_size"] == 128
    assert auto.model == config().model and auto.options == config().options
    chosen = with_budget(config("--batch-size", "512", "--epochs", "3"), train_rows=2_000)
    assert (chosen.loop.batch_size, chosen.loop.epochs) == (512, 3)
    assert with_budget(config("--batch-size", "512"), train_rows=2_000).loop.epochs == 100


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "0"], "--lr must be positive, got 0.0"),
        (["--batch-size", "-1"], "--batch-size must not be negative (0: auto), got -1"),
        (["--epochs", "-2"], "--epochs must not be negative (0: auto), got -2"),
        (["--patience", "0"], "--patience must be positive, got 0"),
        (["--width", "-4"], "--width must be positive, got -4"),
        (["--depth", "0"], "--depth must be positive, got 0"),
        (["--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
        (
            ["--weight-decay", "-0.0001"],
            "--weight-decay must not be negative, got -0.0001",
        ),
        (["--warmup-epochs", "-1"], "--warmup-epochs must not be negative, got -1.0"),
        (["--embedding-dim", "0"], "--embedding-dim must be positive, got 0"),
        (["--periodic-sigma", "nan"], "--periodic-sigma must be a positive number, got nan"),
        (["--lr", "nan"], "--lr must be positive, got nan"),
        (["--lr", "inf"], "--lr must be finite, got inf"),
        (["--grad-clip", "inf"], "--grad-clip must be finite, got inf"),
        (["--width", "16385"], "--width must be at most 16384, got 16385"),
        (["--depth", "65"], "--depth must be at most 64, got 65"),
        (["--epochs", "10001"], "--epochs must be at most 10000, got 10001"),
        (["--batch-size", "1048577"], "--batch-size must be at most 1048576, got 1048577"),
        (
            ["--checkpoint-every-epochs", "-1"],
            "--checkpoint-every-epochs must not be negative, got -1",
        ),
        (
            ["--checkpoint-every-minutes", "inf"],
            "--checkpoint-every-minutes must not be negative, got inf",
        ),
        (
            ["--system-metrics-interval", "nan"],
            "--system-metrics-interval must not be negative, got nan",
        ),
        (["--checkpoint-dir", " "], "--checkpoint-dir is empty"),
        (["--run-name", " "], "--run-name must not be empty, got ' '"),
        (
            ["--run-name", "x" * 251],
            f"--run-name must be at most 250 characters, got {'x' * 251!r}",
        ),
        (["--tag", "a=1", "--tag", "a=2"], "--tag 'a' is given more than once"),
        (["--tag", "world_size=8"], "--tag 'world_size' is set by the trainer or MLflow itself"),
        (
            ["--tag", "mlflow.runName=x"],
            "--tag 'mlflow.runName' is set by the trainer or MLflow itself",
        ),
    ],
)
def test_a_value_out_of_range_is_a_usage_error_naming_the_flag(
    flags: list[str], message: str
) -> None:
    with pytest.raises(UsageError) as refused:
        config(*flags)
    assert str(refused.value) == message


def test_the_run_name_and_tags_reach_the_config() -> None:
    named = config(
        "--run-name", "trial-2 lr=0.01", "--tag", "data_date=2026-12-01", "--tag", "k=a=b"
    )
    assert named.tracking == Tracking(
        "trial-2 lr=0.01", (("data_date", "2026-12-01"), ("k", "a=b"))
    )
    # without --run-name: what differs from the defaults, model settings first
    assert config("--lr", "0.01", "--width", "64").tracking.run_name == "width=64 lr=0.01"


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("data_date", "expected KEY=VALUE"),
        ("=x", "tag key ''"),
        ("bad!key=x", "tag key 'bad!key'"),
        ("a/../b=x", "tag key 'a/../b'"),
        ("/abs=x", "tag key '/abs'"),
        ("k" * 251 + "=x", "tag key"),
        ("k=" + "v" * 8001, "the value is over 8000 characters"),
    ],
)
def test_a_malformed_tag_is_a_usage_error_naming_the_flag(tag: str, problem: str) -> None:
    with pytest.raises(UsageError) as refused:
        build_parser().parse_args([*REQUIRED, "--tag", tag])
    assert "argument --tag:" in str(refused.value) and problem in str(refused.value)


def float_flags() -> list[str]:
    """Every flag of the trainer that takes a number with a fraction."""
    return [a.option_strings[0] for a in build_parser()._actions if a.type is float]


def test_the_float_flags_are_known() -> None:
    assert sorted(float_flags()) == sorted(
        [
            "--dropout", "--periodic-sigma", "--lr", "--weight-decay", "--warmup-epochs",
            "--grad-clip", "--label-smoothing", "--ema-decay", "--checkpoint-every-minutes",
            "--system-metrics-interval",
        ]
    )  # fmt: skip


@pytest.mark.parametrize("flag", float_flags())
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999"])
def test_every_float_flag_refuses_nan_and_infinity(flag: str, value: str) -> None:
    with pytest.raises(UsageError, match=f"^{flag} "):
        config(f"{flag}={value}")  # "-inf" would read as a flag


# The largest value each size flag takes (its --help says so) and a smaller one the checks pass.
SIZE_LIMITS = {
    "--width": 16384,
    "--depth": 64,
    "--embedding-dim": 1024,
    "--ple-bins": 1024,
    "--batch-size": 1_048_576,
    "--epochs": 10_000,
}


@pytest.mark.parametrize(("flag", "limit"), SIZE_LIMITS.items())
def test_sizes_are_bounded_and_the_bound_is_documented(flag: str, limit: int) -> None:
    config(flag, str(limit))  # the bound itself is allowed
    with pytest.raises(UsageError, match=f"^{flag} must be at most {limit}, got {limit + 1}$"):
        config(flag, str(limit + 1))
    (action,) = [a for a in build_parser()._actions if flag in a.option_strings]
    low = 0 if flag in ("--batch-size", "--epochs") else 1  # 0: auto
    assert f"({low} to {limit})" in action.help


@pytest.mark.parametrize(
    "flags", [["--epochs", "-1"], ["--width", "100000"], ["--lr", "nan"], ["--dropout", "inf"]]
)
def test_a_value_out_of_range_exits_2_before_anything_is_created(
    flags: list[str], isolated_env: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(isolated_env.rglob("*"))
    assert main([*REQUIRED, *flags]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"train failed: {flags[0]} ")
    assert sorted(isolated_env.rglob("*")) == before  # no MLflow store, checkpoint or result
