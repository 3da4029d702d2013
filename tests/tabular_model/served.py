"""A logged served model for the serving tests (one per test module that asks for it); the
real scoring server started on it is ``tools.servers.scoring_server``.

The model is an untrained network for the sample data, logged by ``log_served_model`` to an
embedded store under the module's temporary folder and downloaded from there to a local model
folder (what ``mlflow models serve -m`` and ``mlflow.pyfunc.load_model`` take)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from demo.sample_data import TARGET
from tests.trainer.workspace import log_untrained_model, preprocess, workspace_env


@dataclass(frozen=True)
class LoggedModel:
    root: Path  # the module's folder: the embedded store and the data live under it
    model_dir: Path  # the model's own folder (MLmodel, requirements.txt, artifacts, code)
    rows: pd.DataFrame  # raw rows of the sample data, without the target


def log_model(root: Path, frame: pd.DataFrame) -> LoggedModel:
    """Preprocess ``frame`` under ``root``, log an untrained served model for it to the embedded
    store there, and download the model to ``root / "model"``."""
    from common.tracking import configure_mlflow, run_model_uri

    with workspace_env(root):
        data = preprocess(frame, root)
        run_id = log_untrained_model(data, "serving")
        mlflow = configure_mlflow()
        local = mlflow.artifacts.download_artifacts(
            run_model_uri(run_id), dst_path=str(root / "model")
        )
    rows = pd.read_parquet(data / "raw" / "test.parquet").drop(columns=[TARGET])
    return LoggedModel(root, Path(local), rows.reset_index(drop=True))


@pytest.fixture(scope="module")
def logged_model(
    tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame
) -> LoggedModel:
    return log_model(tmp_path_factory.mktemp("served"), sample_frame)


# One bad value per case, in one row of otherwise good rows: (column, value, what the refusal
# says). Every value is one a JSON request can carry (json.dumps writes inf as Infinity, which
# the scoring server's parser reads back as inf).
BAD_VALUES = [
    ("age", "abc", "are not numbers"),
    ("age", True, "are not numbers"),
    ("income", [1, 2], "are not numbers"),
    ("income", {"a": 1}, "are not numbers"),
    ("debt_ratio", float("inf"), "are not finite"),
    ("debt_ratio", float("-inf"), "are not finite"),
    ("tenure_months", "inf", "are not finite"),
    ("late_payments", 10**400, "beyond the float64 range"),
    ("region", ["north", "south"], "are not single values"),
    ("occupation", {"occ": 1}, "are not single values"),
]


def with_bad_value(rows: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    """``rows`` (as Python objects) with ``value`` in the second row of ``column``."""
    bad = rows.astype(object)
    bad.at[bad.index[1], column] = value
    return bad
