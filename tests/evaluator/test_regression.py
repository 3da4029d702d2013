"""The regression parts of the evaluation, pure: the test metrics (sklearn's), the per-slice RMSE,
the paired bootstrap interval of the RMSE reduction (checked against a direct resampling of the
rows), the scoring of a served model's ``prediction`` column, the gate (R² floor, relative RMSE
reduction, relative slice tolerance, no calibration check) and the plots."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from common.metrics import UnusableOutputError
from evaluator.gate import (
    Decision,
    RegressionComparison,
    RegressionScores,
    Thresholds,
    decide_regression,
)
from evaluator.metrics import (
    paired_rmse_reduction_interval,
    regression_evaluation_metrics,
    slice_errors,
    worst_error_slice,
)
from evaluator.plots import MAX_POINTS, PlottedValues, regression_figures
from evaluator.scoring import (
    IncompatibleModelError,
    RegressionScored,
    model_task,
    score_output,
    score_regression,
)
from tabular_model.transform import TableTransform, TargetScaling

ACTUAL = np.array([10.0, 12.0, 9.0, 15.0])


def noisy(actual: np.ndarray, noise: float, seed: int) -> np.ndarray:
    return actual + np.random.default_rng(seed).normal(0, noise, len(actual))


# --- metrics, slices, interval --------------------------------------------------------------


def test_metrics_match_sklearn() -> None:
    actual = np.random.default_rng(1).normal(50, 10, 300)
    predicted = noisy(actual, 4.0, 2)
    m = regression_evaluation_metrics(predicted, actual)
    assert m.rmse == pytest.approx(root_mean_squared_error(actual, predicted))
    assert m.mae == pytest.approx(mean_absolute_error(actual, predicted))
    assert m.r2 == pytest.approx(r2_score(actual, predicted))


def test_predicting_the_mean_has_r2_zero_and_worse_is_negative() -> None:
    actual = np.random.default_rng(3).normal(0, 1, 200)
    assert regression_evaluation_metrics(np.full(200, actual.mean()), actual).r2 == pytest.approx(
        0.0, abs=1e-12
    )
    assert regression_evaluation_metrics(-actual, actual).r2 < 0


def test_slices_hold_the_rmse_of_their_rows_and_keep_missing_values_apart() -> None:
    columns = pd.DataFrame({"city": ["a", "a", "b", None, None, "a"]})
    errors = np.array([1.0, 3.0, 2.0, 4.0, 0.0, 2.0])
    squared = errors**2
    found = [(s.value, s.rows, s.rmse) for s in slice_errors(columns, squared, 1)]
    assert found == [
        ("<missing>", 2, pytest.approx(np.sqrt((16 + 0) / 2))),
        ("a", 3, pytest.approx(np.sqrt((1 + 9 + 4) / 3))),
        ("b", 1, 2.0),
    ]
    assert [s.value for s in slice_errors(columns, squared, 2)] == ["<missing>", "a"]
    worst = worst_error_slice(slice_errors(columns, squared, 2))
    assert worst is not None and worst.value == "<missing>"  # the highest RMSE
    assert worst_error_slice([]) is None


def direct_interval(
    candidate: np.ndarray, champion: np.ndarray, samples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Resample the rows themselves and take the percentiles of the RMSE reduction."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(candidate), size=(samples, len(candidate)))
    reduction = np.sqrt(champion[rows].mean(1)) - np.sqrt(candidate[rows].mean(1))
    tail = (1 - confidence) / 2
    low, high = np.quantile(reduction, [tail, 1 - tail])
    return float(low), float(high)


def squared_pair(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Squared errors of a better candidate (noise 1) and a worse champion (noise 1.3)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1.0, rows) ** 2, rng.normal(0, 1.3, rows) ** 2


def test_rmse_interval_matches_resampling_the_rows() -> None:
    candidate, champion = squared_pair(400, 4)
    ours = paired_rmse_reduction_interval(candidate, champion, 3000, 0.9, seed=0)
    direct = direct_interval(candidate, champion, 3000, 0.9, seed=1)
    assert ours == pytest.approx(direct, abs=0.03)
    reduction = np.sqrt(champion.mean()) - np.sqrt(candidate.mean())
    assert 0 < ours[0] < reduction < ours[1]


def test_rmse_interval_is_reproducible_by_seed_and_widens_with_confidence() -> None:
    candidate, champion = squared_pair(300, 5)
    first = paired_rmse_reduction_interval(candidate, champion, 1000, 0.9, seed=3)
    assert paired_rmse_reduction_interval(candidate, champion, 1000, 0.9, seed=3) == first
    assert paired_rmse_reduction_interval(candidate, champion, 1000, 0.9, seed=4) != first
    wide = paired_rmse_reduction_interval(candidate, champion, 1000, 0.99, seed=3)
    assert wide[0] < first[0] and wide[1] > first[1]


def test_rmse_interval_of_a_model_against_itself_is_zero() -> None:
    candidate, _ = squared_pair(100, 6)
    assert paired_rmse_reduction_interval(candidate, candidate, 200, 0.95, 0) == (0.0, 0.0)


def test_rmse_interval_of_one_row_is_that_rows_reduction() -> None:
    assert paired_rmse_reduction_interval(np.array([4.0]), np.array([9.0]), 50, 0.95, 0) == (
        1.0,
        1.0,
    )


def test_rmse_interval_needs_rows() -> None:
    with pytest.raises(ValueError, match="no rows"):
        paired_rmse_reduction_interval(np.array([]), np.array([]), 10, 0.95, 0)


def test_rmse_interval_resamples_in_chunks_of_bounded_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many small batches give the interval of one large one (scipy's ``batch``)."""
    import evaluator.metrics

    candidate, champion = squared_pair(200, 7)
    whole = paired_rmse_reduction_interval(candidate, champion, 500, 0.95, seed=2)
    monkeypatch.setattr(evaluator.metrics, "BOOTSTRAP_CHUNK", 200 * 3)  # 3 resamples a batch
    assert paired_rmse_reduction_interval(candidate, champion, 500, 0.95, seed=2) == whole


# --- scoring --------------------------------------------------------------------------------


def test_a_prediction_column_is_scored_in_the_targets_units() -> None:
    scored = score_regression(pd.DataFrame({"prediction": [11.0, 12.0, 9.0, 13.0]}), ACTUAL)
    np.testing.assert_array_equal(scored.squared_errors, [1.0, 0.0, 0.0, 4.0])
    assert scored.metrics.rmse == pytest.approx(np.sqrt(5 / 4))
    assert scored.metrics.mae == pytest.approx(3 / 4)


def test_score_output_follows_the_datas_task() -> None:
    scaling = TargetScaling(center=10.0, scale=2.0)
    transform = TableTransform(
        target="price",
        classes=(),
        numeric=(),
        categorical=(),
        task="regression",
        target_scaling=scaling,
    )
    scored = score_output(pd.DataFrame({"prediction": ACTUAL}), ACTUAL, transform)
    assert isinstance(scored, RegressionScored) and scored.metrics.rmse == 0.0


def test_a_classifiers_output_is_incompatible() -> None:
    out = pd.DataFrame({"prediction": ["no"] * 4, "proba_no": [0.9] * 4, "proba_yes": [0.1] * 4})
    with pytest.raises(IncompatibleModelError, match="classification model"):
        score_regression(out, ACTUAL)


def test_an_output_without_a_prediction_is_incompatible() -> None:
    with pytest.raises(IncompatibleModelError, match="'prediction'"):
        score_regression(pd.DataFrame({"value": ACTUAL}), ACTUAL)


@pytest.mark.parametrize(
    "values", [[1.0, np.nan, 2.0, 3.0], [1.0, np.inf, 2.0, 3.0], [1.0, None, 2.0, 3.0]]
)
def test_predictions_that_are_not_finite_are_unusable(values: list[Any]) -> None:
    with pytest.raises(UnusableOutputError, match=r"1 of 4 rows .*\(first: 1\)"):
        score_regression(pd.DataFrame({"prediction": values}), ACTUAL)


def test_predictions_that_are_not_numbers_are_unusable() -> None:
    with pytest.raises(UnusableOutputError, match="not numbers"):
        score_regression(pd.DataFrame({"prediction": ["1", "x", "2", "3"]}), ACTUAL)


def test_the_wrong_number_of_rows_is_unusable() -> None:
    with pytest.raises(UnusableOutputError, match="3 rows for 4"):
        score_regression(pd.DataFrame({"prediction": [1.0, 2.0, 3.0]}), ACTUAL)


class Signed:
    """A loaded model's ``metadata`` as far as ``model_task`` reads it."""

    def __init__(self, outputs: pd.DataFrame | None) -> None:
        from mlflow.models import infer_signature

        self.outputs = None if outputs is None else infer_signature(None, outputs).outputs

    @property
    def metadata(self) -> Any:
        return self

    def get_output_schema(self) -> Any:
        return self.outputs


@pytest.mark.parametrize(
    ("outputs", "task"),
    [
        (pd.DataFrame({"prediction": [1.5]}), "regression"),
        (
            pd.DataFrame({"prediction": ["no"], "proba_no": [0.4], "proba_yes": [0.6]}),
            "classification",
        ),
        (pd.DataFrame({"score": [1.5]}), None),
        (None, None),
    ],
)
def test_the_task_of_a_model_is_read_from_its_output_signature(
    outputs: pd.DataFrame | None, task: str | None
) -> None:
    assert model_task(Signed(outputs)) == task


# --- gate -----------------------------------------------------------------------------------

GOOD = RegressionScores(rmse=9.0, r2=0.6, worst_slice_rmse=12.0)
CHAMPION = RegressionScores(rmse=10.0, r2=0.5, worst_slice_rmse=12.0)
DEFAULTS = Thresholds()


def against(low: float = 0.2, high: float = 1.8, champion: RegressionScores = CHAMPION) -> Any:
    return RegressionComparison(champion, improvement_low=low, improvement_high=high)


def test_the_floor_is_r2() -> None:
    assert decide_regression(GOOD, None, DEFAULTS) == Decision(True, "first_model")
    assert decide_regression(GOOD, None, Thresholds(min_r2=0.7)) == Decision(False, "below_floor")
    assert decide_regression(GOOD, None, Thresholds(min_r2=0.6)).reason == "first_model"
    worse_than_the_mean = RegressionScores(rmse=20.0, r2=-0.1, worst_slice_rmse=None)
    assert decide_regression(worse_than_the_mean, against(), DEFAULTS).reason == "below_floor"


def test_the_accuracy_floor_does_not_apply() -> None:
    assert decide_regression(GOOD, None, Thresholds(min_accuracy=1.0)).should_deploy


@pytest.mark.parametrize("unscored", ["baseline_incompatible", "champion_unusable"])
def test_a_champion_that_could_not_be_scored_is_left_to_a_person(unscored: Any) -> None:
    assert decide_regression(GOOD, None, DEFAULTS, unscored) == Decision(False, unscored)
    assert decide_regression(GOOD, None, Thresholds(min_r2=0.9), unscored).reason == "below_floor"


def test_promoted_when_the_whole_interval_of_the_reduction_is_above_zero() -> None:
    assert decide_regression(GOOD, against(low=0.01), DEFAULTS) == Decision(True, "promoted")
    assert decide_regression(GOOD, against(low=0.0), DEFAULTS) == Decision(False, "not_better")
    assert decide_regression(GOOD, against(low=-0.5), DEFAULTS).reason == "not_better"


def test_min_improvement_is_a_fraction_of_the_champions_rmse() -> None:
    """Champion RMSE 10: a lower bound of 0.2 is a 2 % reduction."""
    assert decide_regression(GOOD, against(low=0.2), Thresholds(min_improvement=0.02)).reason == (
        "not_better"
    )
    assert decide_regression(GOOD, against(low=0.21), Thresholds(min_improvement=0.02)).reason == (
        "promoted"
    )
    # a negative fraction accepts a candidate up to that much worse
    assert decide_regression(GOOD, against(low=-0.4), Thresholds(min_improvement=-0.05)).reason == (
        "promoted"
    )


def test_a_perfect_champion_is_bettered_by_nothing() -> None:
    perfect = RegressionScores(rmse=0.0, r2=1.0, worst_slice_rmse=0.0)
    assert decide_regression(GOOD, against(-9.0, -9.0, perfect), DEFAULTS).reason == "not_better"
    tie = RegressionScores(rmse=0.0, r2=1.0, worst_slice_rmse=0.0)
    loose = Thresholds(min_improvement=-0.1)
    assert decide_regression(tie, against(0.0, 0.0, perfect), loose).reason == "promoted"


def test_the_slice_tolerance_is_a_fraction_of_the_champions_worst_slice_rmse() -> None:
    """The champion's worst slice has RMSE 12: 5 % more is 12.6."""
    within = RegressionScores(rmse=9.0, r2=0.6, worst_slice_rmse=12.6)
    beyond = RegressionScores(rmse=9.0, r2=0.6, worst_slice_rmse=12.61)
    assert decide_regression(within, against(), DEFAULTS).reason == "promoted"
    assert decide_regression(beyond, against(), DEFAULTS) == Decision(False, "slice_regression")
    assert decide_regression(beyond, against(), Thresholds(slice_tolerance=0.1)).should_deploy
    no_slices = RegressionScores(rmse=9.0, r2=0.6, worst_slice_rmse=None)
    assert decide_regression(no_slices, against(), DEFAULTS).reason == "promoted"


def test_not_better_is_reported_before_a_slice_regression_and_calibration_is_never_checked() -> (
    None
):
    bad_slice = RegressionScores(rmse=9.0, r2=0.6, worst_slice_rmse=100.0)
    assert decide_regression(bad_slice, against(low=-0.1), DEFAULTS).reason == "not_better"
    strict = Thresholds(calibration_tolerance=0.0)
    assert decide_regression(GOOD, against(), strict).reason == "promoted"


# --- plots ----------------------------------------------------------------------------------

CANDIDATE_NAME, CHAMPION_NAME = "candidate run 1a2b3c4d", "champion v3"


def plotted_pair(rows: int) -> tuple[PlottedValues, PlottedValues]:
    actual = np.random.default_rng(9).normal(100, 20, rows)
    return (
        PlottedValues(CANDIDATE_NAME, RegressionScored(noisy(actual, 5.0, 10), actual)),
        PlottedValues(CHAMPION_NAME, RegressionScored(noisy(actual, 15.0, 11), actual)),
    )


def legend(figure: Any) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def test_predicted_vs_actual_shows_both_models_over_the_diagonal() -> None:
    candidate, champion = plotted_pair(300)
    figure = regression_figures(candidate, champion)["predicted_vs_actual.png"]
    axes = figure.axes[0]
    assert legend(figure) == [CANDIDATE_NAME, CHAMPION_NAME, "perfect prediction"]
    points = [c.get_offsets() for c in axes.collections]
    np.testing.assert_allclose(points[0][:, 0], candidate.scored.predictions)
    np.testing.assert_allclose(points[0][:, 1], candidate.scored.actual)
    np.testing.assert_allclose(points[1][:, 0], champion.scored.predictions)
    (diagonal,) = axes.get_lines()
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())
    low = min(candidate.scored.actual.min(), champion.scored.predictions.min())
    assert diagonal.get_xdata()[0] == pytest.approx(low)
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("Predicted value", "Actual value")


def test_residuals_show_actual_minus_predicted_over_the_zero_line() -> None:
    candidate, champion = plotted_pair(200)
    figure = regression_figures(candidate, champion)["residuals.png"]
    axes = figure.axes[0]
    assert legend(figure) == [CANDIDATE_NAME, CHAMPION_NAME, "no error"]
    residual = candidate.scored.actual - candidate.scored.predictions
    np.testing.assert_allclose(axes.collections[0].get_offsets()[:, 1], residual)
    (zero,) = axes.get_lines()
    assert list(zero.get_ydata()) == [0.0, 0.0]


def test_without_a_champion_the_candidate_is_alone() -> None:
    candidate, _ = plotted_pair(100)
    figures = regression_figures(candidate)
    assert set(figures) == {"predicted_vs_actual.png", "residuals.png"}
    assert legend(figures["residuals.png"]) == [CANDIDATE_NAME, "no error"]


def test_many_rows_draw_the_same_sample_for_both_models() -> None:
    candidate, champion = plotted_pair(MAX_POINTS * 3)
    figure = regression_figures(candidate, champion)["predicted_vs_actual.png"]
    ours, theirs = (c.get_offsets() for c in figure.axes[0].collections)
    assert len(ours) == len(theirs) == MAX_POINTS
    np.testing.assert_array_equal(ours[:, 1], theirs[:, 1])  # the same rows' actual values
    assert f"{MAX_POINTS:,} of {MAX_POINTS * 3:,} test rows" in figure.axes[0].get_title()


def test_a_champion_scored_on_other_rows_is_refused() -> None:
    candidate, champion = plotted_pair(50)
    moved = PlottedValues(
        CHAMPION_NAME,
        RegressionScored(champion.scored.predictions, champion.scored.actual[::-1].copy()),
    )
    with pytest.raises(ValueError, match="champion v3 was scored on other rows"):
        regression_figures(candidate, moved)
