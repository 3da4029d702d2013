"""What a user chooses about the model: the network's architecture (``ModelConfig``, the
trainer's model flags) and the transform's numeric scaling (preprocess's ``--numeric-scaling``).
It imports neither torch nor numpy, so that the steps' parsers (and ``--help``) are built without
loading them; ``tabular_model.network`` and ``tabular_model.transform`` use these definitions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

Scaling = Literal["robust", "quantile", "standard"]
SCALINGS: tuple[str, ...] = get_args(Scaling)
NUMERIC_EMBEDDINGS = ("none", "periodic", "ple", "ple+periodic")
# Two networks side by side, one on each embedding, trained together; their predictions are
# averaged (see ``tabular_model.network.TabularMLP``).
EMBEDDING_PAIR = "ple+periodic"


class SettingError(ValueError):
    """A chosen setting out of its range: ``setting`` names the field, ``problem`` says what is
    wrong with its value (e.g. ``must be positive, got 0``)."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem


def check_setting(setting: str, value: object, valid: bool, requirement: str) -> None:
    """Raise ``SettingError`` "<setting> <requirement>, got <value>" unless ``valid``."""
    if not valid:
        raise SettingError(setting, f"{requirement}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """What the user chooses about the architecture (the trainer's model flags of the same names;
    their defaults are these). The shapes come from the data: see ``NetworkConfig.for_data``."""

    width: int = 256  # hidden layer width
    depth: int = 3  # hidden layers
    dropout: float = 0.1
    # A PLE network (16 bins of dimension 8, plus a linear term, see
    # ``NetworkConfig.numeric_linear``) and a periodic one (sigma 3) averaged beat either alone
    # and gradient boosting on the model quality panel (docs/BENCHMARKS.md).
    numeric_embedding: str = EMBEDDING_PAIR  # one of NUMERIC_EMBEDDINGS
    embedding_dim: int = 8  # size of each numeric feature's embedding
    periodic_sigma: float = 3.0  # std of the initial periodic frequencies
    ple_bins: int = 16  # piecewise-linear bins per numeric feature
    ensemble_size: int = 1  # members of a TabM-mini ensemble (1: a plain MLP)

    # The largest size each field takes: generous for an 80 GB GPU, but a typo (an extra zero
    # or two) is refused instead of filling the memory of the machine.
    LIMITS: ClassVar[dict[str, int]] = {
        "width": 16384,
        "depth": 64,
        "embedding_dim": 1024,
        "ple_bins": 1024,
        "ensemble_size": 64,
    }

    def __post_init__(self) -> None:
        """Raise ``SettingError`` naming the first field out of its range."""
        for name, limit in self.LIMITS.items():
            value = getattr(self, name)
            check_setting(name, value, value > 0, "must be positive")
            check_setting(name, value, value <= limit, f"must be at most {limit}")
        check_setting("dropout", self.dropout, 0 <= self.dropout < 1, "must be in [0, 1)")
        sigma = self.periodic_sigma
        check_setting("periodic_sigma", sigma, 0 < sigma < math.inf, "must be a positive number")
        embedding = self.numeric_embedding
        valid = embedding in NUMERIC_EMBEDDINGS
        check_setting("numeric_embedding", embedding, valid, f"must be one of {NUMERIC_EMBEDDINGS}")
