"""``python -m scorer.serve`` with a regression champion (a real server process on loopback):
``/invocations`` answers one ``prediction`` per row, the number the model predicts in the
target's units, for JSON and CSV bodies alike, and refuses rows it cannot score naming the
column."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from .conftest import RegressionChampion
from .test_cli import served_predictions
from .test_serve import Server, as_json, post, predictions, refusal, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(
    regression_champion: RegressionChampion, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with running(regression_champion, tmp_path_factory.mktemp("serve-regression")) as server:
        yield server


@pytest.fixture(scope="module")
def rows(regression_champion: RegressionChampion) -> pd.DataFrame:
    """Raw rows without the target, some values missing (as in the sample)."""
    frame = regression_champion.runs.features(regression_champion.workspace.raw_test()).head(25)
    assert frame.isna().any().any(), "the rows should hold missing values"
    return frame


def test_json_rows_get_the_models_numbers(
    regression_store: RegressionChampion, server: Server, rows: pd.DataFrame
) -> None:
    answered = predictions(post(server, as_json(rows), "application/json"))
    assert len(answered) == len(rows)
    assert all(list(row) == ["prediction"] for row in answered)
    values = np.array([row["prediction"] for row in answered])
    assert values.dtype == np.float64 and np.isfinite(values).all()
    expected = served_predictions(regression_store, rows)["prediction"].to_numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_a_csv_body_gets_the_same_numbers_as_json(server: Server, rows: pd.DataFrame) -> None:
    from_csv = predictions(post(server, rows.to_csv(index=False), "text/csv"))
    from_json = predictions(post(server, as_json(rows), "application/json"))
    np.testing.assert_allclose(
        [row["prediction"] for row in from_csv], [row["prediction"] for row in from_json],
        rtol=1e-9,
    )  # fmt: skip


def test_text_in_a_numeric_column_is_refused_naming_it(server: Server, rows: pd.DataFrame) -> None:
    bad = rows.head(3).astype(object)
    bad.loc[2, "distance_km"] = "far"
    message = refusal(post(server, bad.to_csv(index=False), "text/csv"), "INVALID_PARAMETER_VALUE")
    assert "column 'distance_km': 1 of 3 value(s) are not numbers" in message, message
