"""bench.accuracy: its flags, its table, one tiny real run through preprocess and the trainer."""

from __future__ import annotations

import json

import pytest

from bench.accuracy import Score, main, markdown, parse_args


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "none,xgboost"], "--models: unknown ['xgboost']"),
        (["--datasets", "adult"], "--datasets: unknown ['adult']"),
        (["--seeds", "0"], "--seeds must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code != 0
    assert message in capsys.readouterr().err


def test_quick_is_one_seed_of_small_data() -> None:
    args = parse_args(["--quick", "--seeds", "5", "--models", "ple,hgb"])
    assert (args.seeds, args.sample_rows, args.models) == (1, 3000, ["ple", "hgb"])


def test_table_has_mean_and_spread_per_dataset_and_model() -> None:
    scores = [
        Score("wine", "none", 0, 0.9, 1.0),
        Score("wine", "none", 1, 0.8, 3.0),
        Score("wine", "hgb", 0, 1.0, 0.5),
        Score("wine", "hgb", 1, 1.0, 0.5),
    ]
    assert markdown(scores, ["wine"], ["none", "hgb"]).splitlines() == [
        "| dataset | none | hgb |",
        "|---|---:|---:|",
        "| wine | 0.8500 ± 0.0707 (2.0 s) | 1.0000 ± 0.0000 (0.5 s) |",
    ]


@pytest.mark.slow
def test_a_quick_run_scores_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quick", "--datasets", "wine", "--trainer-flags", "--epochs 2 --width 16", "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| wine |" in out
    runs = json.loads(out[out.index("{") :])["runs"]
    assert [(r["dataset"], r["model"], r["seed"]) for r in runs] == [
        ("wine", model, 0) for model in ("none", "periodic", "ple", "ple+periodic", "hgb")
    ]
    assert all(0 <= r["accuracy"] <= 1 for r in runs)
