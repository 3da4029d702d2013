"""The hyperparameter set of a run, from the DAG params: a grid over lists of values, or random
draws from lists and ranges. Pure and seeded, so a rerun of the same run trains the same trials.

Search space (DAG param ``search_space``), one entry per trainer flag, written with
underscores (``batch_size`` for ``--batch-size``):

* grid: every value is a list, e.g. ``{"lr": [0.001, 0.003], "optimizer": ["adam", "adamw"]}``;
* random: a list (uniform choice) or a range ``{"log_uniform": [1e-4, 1e-2]}``,
  ``{"uniform": [0.0, 0.3]}``, ``{"int_uniform": [2, 4]}``;
* or a list of such spaces, e.g. ``[{"numeric_embedding": ["none", "ple"]},
  {"numeric_embedding": ["periodic"], "periodic_sigma": [0.3, 10]}]``: a grid trains each
  space's grid in turn, a random search draws each trial from a space picked at random.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from tabular_pipeline.step_flags import trainer_hyperparameters

# The Python type of each JSON type in the trainer's published flags.
PYTHON_TYPES: dict[str, type] = {"number": float, "integer": int, "string": str}

# The DAG's default search space (param ``search_space``): the trainer's defaults (a PLE and a
# periodic network averaged, AdamW at 1e-3, the auto batch size and epochs, a moving average of
# the weights, label smoothing 0.1) and, as alternatives, each embedding in one network: PLE,
# and periodic at two initial frequency scales (only periodic has a scale, so it is a space of
# its own): 4 trials. Which one wins depends on the data (periodic sigma 10 on the Adult census,
# 0.3 on hpc_data, ple on segment); docs/BENCHMARKS.md ("Model quality panel") measures it.
DEFAULT_SEARCH_SPACE: list[dict[str, list[Any]]] = [
    {"numeric_embedding": ["ple+periodic", "ple"]},
    {"numeric_embedding": ["periodic"], "periodic_sigma": [0.3, 10.0]},
]
RANGES = ("uniform", "log_uniform", "int_uniform")
MAX_RUN_NAME = 250  # characters, the trainer's limit
SEARCHES = ("grid", "random")


class SweepError(ValueError):
    """The search space or the sweep params are not usable (the message names the entry)."""


def hyperparameter_set(
    search: str,
    space: dict[str, Any] | list[dict[str, Any]],
    n_trials: int,
    seed: int,
    max_trials: int,
) -> list[dict[str, Any]]:
    """The trials (flag name → value) of a sweep, in a deterministic order. ``space`` is one
    search space or a list of them (as scikit-learn's ``ParameterGrid``): a grid search trains
    each one's grid in turn, a random search draws each trial from one of them picked at
    random, so settings that only matter together (``periodic_sigma`` with
    ``numeric_embedding: periodic``) are crossed only where they do."""
    if search not in SEARCHES:
        raise SweepError(f"search must be one of {', '.join(SEARCHES)}; got {search!r}")
    spaces = search_spaces(space)
    if search == "grid":
        trials = [trial for where, one in spaces for trial in _grid(where, one)]
    else:
        if n_trials < 1:
            raise SweepError(f"n_trials must be at least 1; got {n_trials}")
        rng = random.Random(seed)
        trials = []
        for _ in range(n_trials):
            where, one = spaces[rng.randrange(len(spaces))] if len(spaces) > 1 else spaces[0]
            trials.append({n: _draw(f"{where}.{n}", n, one[n], rng) for n in sorted(one)})
    if len(trials) > max_trials:
        raise SweepError(f"the sweep has {len(trials)} trials; max_trials allows {max_trials}")
    return trials


def search_spaces(space: Any) -> list[tuple[str, dict[str, Any]]]:
    """Each search space of the param with the name its errors use (``search_space`` alone,
    ``search_space[1]`` in a list); a SweepError for an empty one or an unknown flag."""
    if isinstance(space, dict):
        spaces = [("search_space", space)]
    elif isinstance(space, list):
        spaces = [(f"search_space[{i}]", one) for i, one in enumerate(space)]
    else:
        raise SweepError(f"search_space: expected an object or a list of them; got {space!r}")
    if not spaces:
        raise SweepError("search_space is empty")
    known = trainer_hyperparameters()
    for where, one in spaces:
        if not isinstance(one, dict):
            raise SweepError(f"{where}: expected an object of trainer flags; got {one!r}")
        if not one:
            raise SweepError(f"{where} is empty")
        for name in one:
            if name not in known:
                raise SweepError(f"{where}.{name}: not a trainer flag; known: {', '.join(known)}")
    return spaces


def _grid(where: str, space: dict[str, Any]) -> list[dict[str, Any]]:
    names = sorted(space)
    values = [_choices(f"{where}.{name}", name, space[name], "grid") for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def run_names(trials: list[dict[str, Any]]) -> list[str]:
    """Each trial's MLflow run name: its index and the settings that tell it from the other
    trials (``trial-2 lr=0.003 periodic_sigma=3.0``), at most MAX_RUN_NAME characters."""
    names = sorted({name for trial in trials for name in trial})
    varying = [n for n in names if len({repr(trial.get(n)) for trial in trials}) > 1]
    return [
        " ".join([f"trial-{i}", *(f"{n}={trial[n]}" for n in varying if n in trial)])[:MAX_RUN_NAME]
        for i, trial in enumerate(trials)
    ]


def trainer_arguments(
    trial: dict[str, Any],
    data_path: str,
    experiment: str,
    seed: int,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
) -> list[str]:
    """The trainer's command-line arguments for one trial, its MLflow run named ``run_name``
    and tagged with ``tags``."""
    args = ["--data-path", data_path, "--experiment-name", experiment, "--seed", str(seed)]
    if run_name is not None:
        args += ["--run-name", run_name]
    for key, value in (tags or {}).items():
        args += ["--tag", f"{key}={value}"]
    for name, value in trial.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def _choices(where: str, name: str, spec: Any, search: str) -> list[Any]:
    """The values of list ``spec`` for flag ``name``; errors name ``where`` (its path in the
    param)."""
    if not isinstance(spec, list) or not spec:
        raise SweepError(
            f"{where}: a {search} search needs a non-empty list of values; got {spec!r}"
        )
    return [_typed(where, name, v) for v in spec]


def _typed(where: str, name: str, value: Any) -> Any:
    """``value`` as the trainer flag's type (an integer is a valid number); NaN, infinity or a
    value outside the flag's choices is refused here, not in a trainer pod."""
    flag = trainer_hyperparameters()[name]
    kind = PYTHON_TYPES[flag["type"]]
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise SweepError(f"{where}: expected {kind.__name__} values; got {value!r}")
    if kind is float and not math.isfinite(value):  # NaN would pass any range check after
        raise SweepError(f"{where}: expected finite numbers; got {value!r}")
    if "enum" in flag and value not in flag["enum"]:
        raise SweepError(f"{where}: {value!r} is not one of {', '.join(map(str, flag['enum']))}")
    return value


def _draw(where: str, name: str, spec: Any, rng: random.Random) -> Any:
    if isinstance(spec, list):
        return rng.choice(_choices(where, name, spec, "random"))
    if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in RANGES):
        raise SweepError(f"{where}: expected a list or one of {', '.join(RANGES)}; got {spec!r}")
    kind, bounds = next(iter(spec.items()))
    numbers = isinstance(bounds, list) and len(bounds) == 2 and all(_number(b) for b in bounds)
    if not numbers or not bounds[0] <= bounds[1]:
        raise SweepError(f"{where}.{kind}: expected [low, high] numbers; got {bounds!r}")
    low, high = bounds
    if kind == "int_uniform":
        if not all(isinstance(b, int) for b in bounds):
            raise SweepError(f"{where}.int_uniform: bounds must be integers")
        return _typed(where, name, rng.randint(low, high))
    if kind == "log_uniform":
        if low <= 0:
            raise SweepError(f"{where}.log_uniform: bounds must be positive")
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    # Three significant digits read well in the summary; rounding must not leave the range.
    return _typed(where, name, min(max(float(f"{value:.3g}"), low), high))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
