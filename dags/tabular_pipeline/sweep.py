"""The hyperparameter set of a run, from the DAG params: a grid over lists of values, or random
draws from lists and ranges. Pure and seeded, so a rerun of the same run trains the same trials.

Search space (DAG param ``search_space``), one entry per trainer flag, written with
underscores (``batch_size`` for ``--batch-size``):

* grid: every value is a list, e.g. ``{"lr": [0.001, 0.003], "optimizer": ["adam", "adamw"]}``;
* random: a list (uniform choice) or a range ``{"log_uniform": [1e-4, 1e-2]}``,
  ``{"uniform": [0.0, 0.3]}``, ``{"int_uniform": [2, 4]}``.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from tabular_pipeline.step_flags import trainer_hyperparameters

# The Python type of each JSON type in the trainer's published flags.
PYTHON_TYPES: dict[str, type] = {"number": float, "integer": int, "string": str}

# The DAG's default search space (param ``search_space``): a 6-trial grid of an MLP with
# periodic numeric embeddings. Their initial frequency scale decides most: small (0.1) suits
# small, smooth data, large (3-10) data with heavy-tailed columns such as the Adult census
# (docs/BENCHMARKS.md: 0.860 at 0.1, 0.872 at 10); the validation split picks per dataset.
DEFAULT_SEARCH_SPACE: dict[str, list[Any]] = {
    "lr": [0.001, 0.003],
    "optimizer": ["adamw"],
    "numeric_embedding": ["periodic"],
    "periodic_sigma": [0.1, 3.0, 10.0],
    "embedding_dim": [32],
    "width": [256],
    "depth": [3],
    "batch_size": [1024],
    "epochs": [20],
}
RANGES = ("uniform", "log_uniform", "int_uniform")
MAX_RUN_NAME = 250  # characters, the trainer's limit
SEARCHES = ("grid", "random")


class SweepError(ValueError):
    """The search space or the sweep params are not usable (the message names the entry)."""


def hyperparameter_set(
    search: str, space: dict[str, Any], n_trials: int, seed: int, max_trials: int
) -> list[dict[str, Any]]:
    """The trials (flag name → value) of a sweep, in a deterministic order."""
    if search not in SEARCHES:
        raise SweepError(f"search must be one of {', '.join(SEARCHES)}; got {search!r}")
    if not space:
        raise SweepError("search_space is empty")
    known = trainer_hyperparameters()
    for name in space:
        if name not in known:
            raise SweepError(f"search_space.{name}: not a trainer flag; known: {', '.join(known)}")
    names = sorted(space)
    if search == "grid":
        values = [_choices(name, space[name], search) for name in names]
        trials = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    else:
        if n_trials < 1:
            raise SweepError(f"n_trials must be at least 1; got {n_trials}")
        rng = random.Random(seed)
        trials = [{name: _draw(name, space[name], rng) for name in names} for _ in range(n_trials)]
    if len(trials) > max_trials:
        raise SweepError(f"the sweep has {len(trials)} trials; max_trials allows {max_trials}")
    return trials


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


def _choices(name: str, spec: Any, search: str) -> list[Any]:
    if not isinstance(spec, list) or not spec:
        raise SweepError(
            f"search_space.{name}: a {search} search needs a non-empty list of values; got {spec!r}"
        )
    return [_typed(name, v) for v in spec]


def _typed(name: str, value: Any) -> Any:
    """``value`` as the trainer flag's type (an integer is a valid number); NaN, infinity or a
    value outside the flag's choices is refused here, not in a trainer pod."""
    flag = trainer_hyperparameters()[name]
    kind = PYTHON_TYPES[flag["type"]]
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise SweepError(f"search_space.{name}: expected {kind.__name__} values; got {value!r}")
    if kind is float and not math.isfinite(value):  # NaN would pass any range check after
        raise SweepError(f"search_space.{name}: expected finite numbers; got {value!r}")
    if "enum" in flag and value not in flag["enum"]:
        raise SweepError(
            f"search_space.{name}: {value!r} is not one of {', '.join(map(str, flag['enum']))}"
        )
    return value


def _draw(name: str, spec: Any, rng: random.Random) -> Any:
    if isinstance(spec, list):
        return rng.choice(_choices(name, spec, "random"))
    if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in RANGES):
        raise SweepError(
            f"search_space.{name}: expected a list or one of {', '.join(RANGES)}; got {spec!r}"
        )
    kind, bounds = next(iter(spec.items()))
    numbers = isinstance(bounds, list) and len(bounds) == 2 and all(_number(b) for b in bounds)
    if not numbers or not bounds[0] <= bounds[1]:
        raise SweepError(
            f"search_space.{name}.{kind}: expected [low, high] numbers; got {bounds!r}"
        )
    low, high = bounds
    if kind == "int_uniform":
        if not all(isinstance(b, int) for b in bounds):
            raise SweepError(f"search_space.{name}.int_uniform: bounds must be integers")
        return _typed(name, rng.randint(low, high))
    if kind == "log_uniform":
        if low <= 0:
            raise SweepError(f"search_space.{name}.log_uniform: bounds must be positive")
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    # Three significant digits read well in the summary; rounding must not leave the range.
    return _typed(name, min(max(float(f"{value:.3g}"), low), high))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
