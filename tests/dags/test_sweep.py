"""The sweep's hyperparameter set: a grid is the full product in a fixed order, random draws are
seeded and stay in their ranges, bad search spaces fail with a SweepError naming the entry, and
each trial becomes trainer flags the trainer's own parser accepts."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from tabular_pipeline.step_flags import trainer_hyperparameters
from tabular_pipeline.sweep import (
    PYTHON_TYPES,
    SEARCHES,
    SweepError,
    hyperparameter_set,
    run_names,
    trainer_arguments,
)

RANDOM_SPACE: dict[str, Any] = {
    "lr": {"log_uniform": [1e-4, 1e-2]},
    "dropout": {"uniform": [0.0, 0.3]},
    "depth": {"int_uniform": [2, 4]},
    "optimizer": ["adam", "adamw", "sgd"],
    "batch_size": [256, 1024],
}


def three_significant_digits(value: float) -> bool:
    return float(f"{value:.3g}") == value


# --- grid ---------------------------------------------------------------------------------------


def test_grid_is_the_full_product_in_deterministic_order() -> None:
    space = {"optimizer": ["adam", "adamw"], "lr": [0.001, 0.01], "batch_size": [128]}
    trials = hyperparameter_set("grid", space, n_trials=1, seed=0, max_trials=10)
    # Flags in sorted order, each list in its given order, the last flag varying fastest.
    assert trials == [
        {"batch_size": 128, "lr": 0.001, "optimizer": "adam"},
        {"batch_size": 128, "lr": 0.001, "optimizer": "adamw"},
        {"batch_size": 128, "lr": 0.01, "optimizer": "adam"},
        {"batch_size": 128, "lr": 0.01, "optimizer": "adamw"},
    ]
    assert [list(t) for t in trials] == [["batch_size", "lr", "optimizer"]] * 4


def test_grid_ignores_seed_n_trials_and_key_order() -> None:
    space = {"lr": [0.001, 0.003, 0.01], "depth": [2, 3]}
    reordered = {"depth": [2, 3], "lr": [0.001, 0.003, 0.01]}
    first = hyperparameter_set("grid", space, n_trials=1, seed=1, max_trials=6)
    assert len(first) == 6
    assert hyperparameter_set("grid", reordered, n_trials=50, seed=99, max_trials=6) == first
    assert hyperparameter_set("grid", space, n_trials=0, seed=1, max_trials=6) == first


def test_grid_accepts_ints_for_float_flags_as_floats() -> None:
    trials = hyperparameter_set(
        "grid", {"lr": [1, 0.5], "weight_decay": [0]}, n_trials=1, seed=0, max_trials=4
    )
    assert trials == [{"lr": 1.0, "weight_decay": 0.0}, {"lr": 0.5, "weight_decay": 0.0}]
    assert all(type(t["lr"]) is float and type(t["weight_decay"]) is float for t in trials)


def test_grid_at_max_trials_is_allowed_one_more_is_not() -> None:
    space = {"depth": [1, 2, 3], "width": [64, 128, 256]}
    assert len(hyperparameter_set("grid", space, n_trials=1, seed=0, max_trials=9)) == 9
    with pytest.raises(SweepError, match=r"^the sweep has 9 trials; max_trials allows 8$"):
        hyperparameter_set("grid", space, n_trials=1, seed=0, max_trials=8)


def test_search_space_is_not_modified() -> None:
    space = {"lr": [1, 2], "dropout": {"uniform": [0.0, 0.5]}}
    before = {"lr": [1, 2], "dropout": {"uniform": [0.0, 0.5]}}
    hyperparameter_set("random", space, n_trials=5, seed=0, max_trials=5)
    hyperparameter_set("grid", {"lr": space["lr"]}, n_trials=1, seed=0, max_trials=5)
    assert space == before
    assert all(type(v) is int for v in space["lr"])


# --- random -------------------------------------------------------------------------------------


def test_random_is_reproducible_for_a_seed() -> None:
    first = hyperparameter_set("random", RANDOM_SPACE, n_trials=8, seed=42, max_trials=8)
    again = hyperparameter_set("random", RANDOM_SPACE, n_trials=8, seed=42, max_trials=8)
    assert first == again
    assert len(first) == 8
    assert all(list(t) == sorted(RANDOM_SPACE) for t in first)


def test_random_differs_for_another_seed() -> None:
    first = hyperparameter_set("random", RANDOM_SPACE, n_trials=8, seed=42, max_trials=8)
    other = hyperparameter_set("random", RANDOM_SPACE, n_trials=8, seed=43, max_trials=8)
    assert first != other
    assert [t["lr"] for t in first] != [t["lr"] for t in other]


def test_random_does_not_depend_on_key_order() -> None:
    reordered = dict(reversed(list(RANDOM_SPACE.items())))
    assert hyperparameter_set("random", reordered, 6, 7, 6) == hyperparameter_set(
        "random", RANDOM_SPACE, 6, 7, 6
    )


def test_random_draws_stay_within_their_ranges() -> None:
    trials = hyperparameter_set("random", RANDOM_SPACE, n_trials=200, seed=3, max_trials=200)
    for trial in trials:
        assert type(trial["lr"]) is float and 1e-4 <= trial["lr"] <= 1e-2
        assert type(trial["dropout"]) is float and 0.0 <= trial["dropout"] <= 0.3
        assert type(trial["depth"]) is int and 2 <= trial["depth"] <= 4
        assert trial["optimizer"] in ("adam", "adamw", "sgd")
        assert trial["batch_size"] in (256, 1024)
        assert three_significant_digits(trial["lr"])
        assert three_significant_digits(trial["dropout"])
    # Both ends of int_uniform are included and every list value is drawn at some point.
    assert {t["depth"] for t in trials} == {2, 3, 4}
    assert {t["optimizer"] for t in trials} == {"adam", "adamw", "sgd"}
    assert {t["batch_size"] for t in trials} == {256, 1024}


def test_log_uniform_spreads_over_the_decades() -> None:
    trials = hyperparameter_set(
        "random", {"lr": {"log_uniform": [1e-5, 1e-1]}}, n_trials=400, seed=5, max_trials=400
    )
    decades = {math.floor(math.log10(t["lr"])) for t in trials}
    # A uniform draw would put ~99.9% of the values in the top decade.
    assert decades == {-5, -4, -3, -2}


def test_random_accepts_ints_for_float_flags() -> None:
    trials = hyperparameter_set(
        "random",
        {"lr": [1, 2], "weight_decay": {"int_uniform": [0, 1]}, "dropout": {"uniform": [0, 1]}},
        n_trials=20,
        seed=0,
        max_trials=20,
    )
    for trial in trials:
        assert type(trial["lr"]) is float and trial["lr"] in (1.0, 2.0)
        assert type(trial["weight_decay"]) is float and trial["weight_decay"] in (0.0, 1.0)
        assert type(trial["dropout"]) is float and 0.0 <= trial["dropout"] <= 1.0


def test_a_range_with_equal_bounds_always_draws_that_value() -> None:
    space = {"dropout": {"uniform": [0.2, 0.2]}, "width": {"int_uniform": [64, 64]}}
    trials = hyperparameter_set("random", space, n_trials=3, seed=0, max_trials=3)
    assert trials == [{"dropout": 0.2, "width": 64}] * 3


def test_random_n_trials_is_checked_against_max_trials() -> None:
    assert len(hyperparameter_set("random", {"depth": [2]}, 4, 0, 4)) == 4
    with pytest.raises(SweepError, match=r"^the sweep has 5 trials; max_trials allows 4$"):
        hyperparameter_set("random", {"depth": [2]}, n_trials=5, seed=0, max_trials=4)


@pytest.mark.parametrize("n_trials", [0, -3])
def test_random_needs_at_least_one_trial(n_trials: int) -> None:
    with pytest.raises(SweepError, match=rf"^n_trials must be at least 1; got {n_trials}$"):
        hyperparameter_set("random", {"depth": [2]}, n_trials=n_trials, seed=0, max_trials=4)


# --- bad search spaces --------------------------------------------------------------------------


@pytest.mark.parametrize("search", ["bayes", "Grid", ""])
def test_unknown_search(search: str) -> None:
    with pytest.raises(SweepError, match=r"^search must be one of grid, random; got "):
        hyperparameter_set(search, {"lr": [0.1]}, n_trials=1, seed=0, max_trials=4)


@pytest.mark.parametrize("search", ["grid", "random"])
def test_empty_space(search: str) -> None:
    with pytest.raises(SweepError, match=r"^search_space is empty$"):
        hyperparameter_set(search, {}, n_trials=1, seed=0, max_trials=4)


@pytest.mark.parametrize("search", ["grid", "random"])
def test_unknown_flag(search: str) -> None:
    with pytest.raises(
        SweepError, match=r"^search_space\.learning_rate: not a trainer flag; known"
    ):
        hyperparameter_set(
            search, {"lr": [0.1], "learning_rate": [0.1]}, n_trials=1, seed=0, max_trials=4
        )


@pytest.mark.parametrize(
    "spec", [{"uniform": [0.0, 0.3]}, 0.1, [], "0.1, 0.2"], ids=["range", "scalar", "empty", "str"]
)
def test_grid_entry_must_be_a_non_empty_list(spec: Any) -> None:
    with pytest.raises(
        SweepError, match=r"^search_space\.dropout: a grid search needs a non-empty list of values"
    ):
        hyperparameter_set("grid", {"dropout": spec}, n_trials=1, seed=0, max_trials=4)


BAD_TYPES: list[tuple[str, Any, str]] = [
    ("batch_size", [256, 32.5], "expected int values; got 32.5"),
    ("batch_size", [True], "expected int values; got True"),
    ("epochs", ["10"], "expected int values; got '10'"),
    ("lr", ["0.001"], "expected float values; got '0.001'"),
    ("lr", [False], "expected float values; got False"),
    ("optimizer", ["adam", 1], "expected str values; got 1"),
    ("dropout", [None], "expected float values; got None"),
]


@pytest.mark.parametrize("search", ["grid", "random"])
@pytest.mark.parametrize(("name", "values", "problem"), BAD_TYPES)
def test_wrong_value_type(search: str, name: str, values: list[Any], problem: str) -> None:
    with pytest.raises(SweepError) as info:
        # A random draw checks the whole list, not only the value it picks.
        hyperparameter_set(search, {name: values}, n_trials=1, seed=0, max_trials=4)
    assert str(info.value) == f"search_space.{name}: {problem}"


@pytest.mark.parametrize("search", ["grid", "random"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ["lr", "dropout", "periodic_sigma", "weight_decay", "grad_clip"])
def test_non_finite_values_are_refused(search: str, bad: float, name: str) -> None:
    with pytest.raises(SweepError) as info:
        # A random draw checks the whole list, not only the value it picks.
        hyperparameter_set(search, {name: [0.1, bad]}, n_trials=1, seed=0, max_trials=4)
    assert str(info.value) == f"search_space.{name}: expected finite numbers; got {bad!r}"


def test_nan_from_a_json_run_conf_is_refused() -> None:
    space = json.loads('{"lr": [0.001, NaN], "periodic_sigma": [Infinity]}')  # Python's json
    with pytest.raises(SweepError, match=r"^search_space\.lr: expected finite numbers; got nan$"):
        hyperparameter_set("grid", space, n_trials=1, seed=0, max_trials=4)


def test_a_drawn_value_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(SweepError, match=r"^search_space\.batch_size: expected int values; got "):
        hyperparameter_set(
            "random", {"batch_size": {"uniform": [16, 512]}}, n_trials=1, seed=0, max_trials=1
        )
    with pytest.raises(SweepError, match=r"^search_space\.optimizer: expected str values; got "):
        hyperparameter_set(
            "random", {"optimizer": {"int_uniform": [0, 2]}}, n_trials=1, seed=0, max_trials=1
        )


@pytest.mark.parametrize(
    "spec",
    [
        {"normal": [0.0, 1.0]},
        {"uniform": [0.0, 0.3], "log_uniform": [0.1, 0.2]},
        {},
        0.1,
        "uniform",
    ],
    ids=["unknown-range", "two-ranges", "empty-mapping", "scalar", "str"],
)
def test_random_entry_must_be_a_list_or_one_range(spec: Any) -> None:
    with pytest.raises(
        SweepError,
        match=r"^search_space\.dropout: expected a list or one of uniform, log_uniform, "
        r"int_uniform; got ",
    ):
        hyperparameter_set("random", {"dropout": spec}, n_trials=1, seed=0, max_trials=4)


def test_random_entry_list_must_not_be_empty() -> None:
    with pytest.raises(
        SweepError, match=r"^search_space\.depth: a random search needs a non-empty list of values"
    ):
        hyperparameter_set("random", {"depth": []}, n_trials=1, seed=0, max_trials=4)


@pytest.mark.parametrize(
    ("kind", "bounds"),
    [
        ("uniform", [0.3, 0.1]),
        ("uniform", [0.1]),
        ("uniform", [0.1, 0.2, 0.3]),
        ("uniform", (0.1, 0.2)),
        ("uniform", 0.2),
        ("log_uniform", [1e-2, 1e-4]),
        ("int_uniform", [4, 2]),
    ],
)
def test_bad_range_bounds(kind: str, bounds: Any) -> None:
    with pytest.raises(SweepError) as info:
        hyperparameter_set("random", {"dropout": {kind: bounds}}, n_trials=1, seed=0, max_trials=4)
    assert (
        str(info.value)
        == f"search_space.dropout.{kind}: expected [low, high] numbers; got {bounds!r}"
    )


@pytest.mark.parametrize("bounds", [[0, 1e-2], [-1e-3, 1e-2], [-2.0, -1.0], [0.0, 0.0]])
def test_log_uniform_needs_positive_bounds(bounds: list[float]) -> None:
    with pytest.raises(
        SweepError, match=r"^search_space\.lr\.log_uniform: bounds must be positive$"
    ):
        hyperparameter_set(
            "random", {"lr": {"log_uniform": bounds}}, n_trials=1, seed=0, max_trials=4
        )


# --- a list of search spaces ----------------------------------------------------------------


TWO_SPACES: list[dict[str, Any]] = [
    {"numeric_embedding": ["none", "ple"]},
    {"numeric_embedding": ["periodic"], "periodic_sigma": [0.3, 3.0]},
]


def test_a_grid_over_a_list_trains_each_spaces_grid_in_turn() -> None:
    trials = hyperparameter_set("grid", TWO_SPACES, n_trials=0, seed=0, max_trials=4)
    assert trials == [
        {"numeric_embedding": "none"},
        {"numeric_embedding": "ple"},
        {"numeric_embedding": "periodic", "periodic_sigma": 0.3},
        {"numeric_embedding": "periodic", "periodic_sigma": 3.0},
    ]
    assert run_names(trials) == [
        "trial-0 numeric_embedding=none",
        "trial-1 numeric_embedding=ple",
        "trial-2 numeric_embedding=periodic periodic_sigma=0.3",
        "trial-3 numeric_embedding=periodic periodic_sigma=3.0",
    ]
    with pytest.raises(SweepError, match=r"^the sweep has 4 trials; max_trials allows 3$"):
        hyperparameter_set("grid", TWO_SPACES, n_trials=0, seed=0, max_trials=3)


def test_a_random_search_over_a_list_draws_each_trial_from_one_space() -> None:
    trials = hyperparameter_set("random", TWO_SPACES, n_trials=40, seed=3, max_trials=40)
    assert trials == hyperparameter_set("random", TWO_SPACES, n_trials=40, seed=3, max_trials=40)
    kinds = {trial["numeric_embedding"] for trial in trials}
    assert kinds == {"none", "ple", "periodic"}  # both spaces were drawn from
    for trial in trials:  # periodic_sigma only where the space has it
        assert ("periodic_sigma" in trial) == (trial["numeric_embedding"] == "periodic")


def test_one_space_in_a_list_draws_as_the_space_alone() -> None:
    space = {"lr": {"log_uniform": [1e-4, 1e-2]}, "width": [64, 128]}
    alone = hyperparameter_set("random", space, n_trials=5, seed=9, max_trials=5)
    assert hyperparameter_set("random", [space], n_trials=5, seed=9, max_trials=5) == alone


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ([], r"^search_space is empty$"),
        ([{"lr": [0.1]}, {}], r"^search_space\[1\] is empty$"),
        ([{"lr": [0.1]}, ["lr"]], r"^search_space\[1\]: expected an object of trainer flags"),
        ("lr", r"^search_space: expected an object or a list of them"),
        ([{"lr": [0.1]}, {"rate": [0.1]}], r"^search_space\[1\]\.rate: not a trainer flag"),
        ([{"lr": [0.1]}, {"lr": ["fast"]}], r"^search_space\[1\]\.lr: expected float values"),
    ],
)
def test_a_bad_space_in_a_list_is_named_by_its_index(space: Any, message: str) -> None:
    for search in SEARCHES:
        with pytest.raises(SweepError, match=message):
            hyperparameter_set(search, space, n_trials=2, seed=0, max_trials=4)


def test_sweep_error_is_a_value_error() -> None:
    assert issubclass(SweepError, ValueError)


# --- trainer arguments --------------------------------------------------------------------------


def test_trainer_arguments_are_kebab_case_flags() -> None:
    trial = {"batch_size": 256, "lr": 0.001, "optimizer": "adamw", "weight_decay": 0.0}
    assert trainer_arguments(trial, "s3://runs/x/preprocess", "tabular", seed=7) == [
        "--data-path",
        "s3://runs/x/preprocess",
        "--experiment-name",
        "tabular",
        "--seed",
        "7",
        "--batch-size",
        "256",
        "--lr",
        "0.001",
        "--optimizer",
        "adamw",
        "--weight-decay",
        "0.0",
    ]


def test_trainer_arguments_name_and_tag_the_run() -> None:
    tags = {"data_date": "2026-12-01", "sweep.trial": "2"}
    args = trainer_arguments({"lr": 0.01}, "/data/p", "exp", 0, "trial-2 lr=0.01", tags)
    assert args[6:] == [
        "--run-name",
        "trial-2 lr=0.01",
        "--tag",
        "data_date=2026-12-01",
        "--tag",
        "sweep.trial=2",
        "--lr",
        "0.01",
    ]


def test_run_names_show_the_settings_that_vary_between_trials() -> None:
    trials = hyperparameter_set("grid", {"lr": [0.001, 0.003], "width": [256]}, 0, 0, 10)
    assert run_names(trials) == ["trial-0 lr=0.001", "trial-1 lr=0.003"]
    assert run_names([{"lr": 0.001}]) == ["trial-0"]
    # a setting only some trials have tells them apart too
    assert run_names([{"lr": 0.1}, {"lr": 0.1, "ple_bins": 8}]) == ["trial-0", "trial-1 ple_bins=8"]
    long = run_names([{"optimizer": "a" * 300}, {"optimizer": "b"}])
    assert len(long[0]) == 250 and long[1] == "trial-1 optimizer=b"


def test_trainer_arguments_without_hyperparameters() -> None:
    assert trainer_arguments({}, "/data/p", "exp", seed=0) == [
        "--data-path",
        "/data/p",
        "--experiment-name",
        "exp",
        "--seed",
        "0",
    ]


def test_every_sweep_flag_is_a_trainer_flag_of_the_same_type() -> None:
    """The trainer's own parser reads back every drawn value (trainer.cli imports torch)."""
    from trainer.cli import build_parser

    space: dict[str, Any] = {
        "lr": {"log_uniform": [1e-6, 1e-2]},
        "batch_size": {"int_uniform": [16, 4096]},
        "optimizer": ["adam", "adamw", "sgd"],
        "epochs": {"int_uniform": [1, 50]},
        "patience": {"int_uniform": [1, 10]},
        "width": [64, 512],
        "depth": {"int_uniform": [1, 6]},
        "dropout": {"uniform": [0.0, 0.5]},
        "weight_decay": {"log_uniform": [1e-7, 1e-3]},
        "lr_schedule": ["constant", "cosine"],
        "warmup_epochs": {"uniform": [0.0, 2.0]},
        "grad_clip": [0.0, 1.0],
        "class_weights": ["none", "balanced"],
        "label_smoothing": {"uniform": [0.0, 0.2]},
        "ema_decay": {"uniform": [0.0, 0.999]},
        "numeric_embedding": ["none", "periodic", "ple", "ple+periodic"],
        "embedding_dim": {"int_uniform": [8, 32]},
        "periodic_sigma": {"log_uniform": [0.01, 1.0]},
        "ple_bins": {"int_uniform": [2, 32]},
        "ensemble_size": {"int_uniform": [1, 4]},
        "loss": ["auto", "mse", "huber"],
    }
    flags = trainer_hyperparameters()
    assert set(space) == set(flags)
    parser = build_parser()
    for trial in hyperparameter_set("random", space, n_trials=20, seed=11, max_trials=20):
        argv = trainer_arguments(trial, "/data/p", "exp", 3, "trial-0 x=1", {"data_date": "d"})
        args = parser.parse_args(argv)
        assert (args.data_path, args.experiment_name, args.seed) == ("/data/p", "exp", 3)
        assert (args.run_name, args.tags) == ("trial-0 x=1", [("data_date", "d")])
        for name, value in trial.items():
            parsed = getattr(args, name)
            assert type(parsed) is PYTHON_TYPES[flags[name]["type"]], name
            assert parsed == value, name


@pytest.mark.parametrize("bounds", [["a", "b"], [None, 0.5]])
def test_non_numeric_bounds_are_a_sweep_error(bounds: list[Any]) -> None:
    with pytest.raises(SweepError, match=r"^search_space\.dropout\.uniform: "):
        hyperparameter_set(
            "random", {"dropout": {"uniform": bounds}}, n_trials=1, seed=0, max_trials=1
        )


def test_rounded_draws_stay_within_narrow_bounds() -> None:
    trials = hyperparameter_set(
        "random", {"dropout": {"uniform": [0.1231, 0.1234]}}, n_trials=5, seed=0, max_trials=5
    )
    assert all(0.1231 <= t["dropout"] <= 0.1234 for t in trials), trials


def test_int_uniform_refuses_non_integer_bounds() -> None:
    with pytest.raises(
        SweepError, match=r"^search_space\.depth\.int_uniform: bounds must be integers"
    ):
        hyperparameter_set(
            "random", {"depth": {"int_uniform": [2.5, 3.5]}}, n_trials=20, seed=0, max_trials=20
        )


def test_a_value_outside_a_flags_choices_is_a_sweep_error() -> None:
    with pytest.raises(
        SweepError, match=r"^search_space\.optimizer: 'adamax' is not one of adam, adamw, sgd"
    ):
        hyperparameter_set("grid", {"optimizer": ["adamw", "adamax"]}, 1, seed=0, max_trials=4)
