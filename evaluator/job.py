"""The evaluation: load the raw test rows, score the candidate and the champion on them, judge
them with the gate and record the result on the candidate's run. The task (classification or
regression) is the data's (its fitted transform); a candidate of the other task fails the step, a
champion of the other task is ``baseline_incompatible`` (a person decides)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from common import dataset, storage, tables
from common.evaluation_record import record_evaluation
from common.metrics import UnusableOutputError
from common.step import StepError
from common.tracking import (
    CHAMPION,
    alias_version,
    configure_mlflow,
    first_line,
    is_unreachable,
    reaching_mlflow,
    run_model_uri,
)
from contract.results import (
    CHAMPION_PROBLEM_MAX_CHARS,
    EvaluateResult,
    SliceAccuracy,
    SliceError,
)
from evaluator.gate import (
    ChampionUnscored,
    Comparison,
    Decision,
    RegressionComparison,
    RegressionScores,
    Scores,
    Thresholds,
    decide,
    decide_regression,
)
from evaluator.metrics import (
    paired_bootstrap_interval,
    paired_rmse_reduction_interval,
    slice_accuracies,
    slice_errors,
    worst_error_slice,
    worst_slice,
)
from evaluator.plots import Plotted, PlottedValues, evaluation_figures, regression_figures
from evaluator.scoring import (
    AnyScored,
    IncompatibleModelError,
    RegressionScored,
    Scored,
    model_task,
    score_output,
)
from tabular_model.integrity import ModelIntegrityError, load_verified_model
from tabular_model.transform import TableTransform, Task, TransformError, encode_target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateConfig:
    run_id: str
    data_path: str
    model_name: str
    thresholds: Thresholds
    bootstrap_samples: int
    confidence: float
    bootstrap_seed: int
    min_slice_size: int
    plots: bool


@dataclass(frozen=True)
class TestRows:
    """The raw test rows of a preprocess output, split into model input and the truth: encoded
    labels (classification) or the target's float64 values in its units (regression)."""

    __test__ = False  # not a pytest class

    uri: str
    transform: TableTransform
    features: pd.DataFrame
    labels: np.ndarray
    fingerprint: str

    @property
    def task(self) -> Task:
        return self.transform.task

    @property
    def slice_columns(self) -> pd.DataFrame:
        return self.features[[c.name for c in self.transform.categorical]]


def load_test_rows(data_path: str) -> TestRows:
    transform = dataset.load_transform(data_path)
    uri = dataset.raw_uri(data_path, "test")
    test = tables.read_table(uri)
    if test.empty:
        raise StepError(f"{uri} has no rows")
    if transform.target not in test.columns:
        raise StepError(f"{uri}: target column {transform.target!r} not found")
    try:
        labels = encode_target(transform, test[transform.target])
    except TransformError as exc:
        raise StepError(f"{uri}: {exc}") from exc
    if transform.is_regression:  # checked above; scored in its units, not standardised
        labels = test[transform.target].to_numpy("float64")
    features = test.drop(columns=[transform.target])
    return TestRows(uri, transform, features, labels, storage.fingerprint(uri))


def load_model(model_uri: str) -> Any:
    """The model at ``model_uri``, loaded only after every file of it matched the sha256 its
    run recorded when it was logged (``ModelIntegrityError`` otherwise): MLflow runs a model's
    code when it loads it, and the artifact store is no place to trust."""
    configure_mlflow()
    return load_verified_model(model_uri)


@dataclass(frozen=True)
class Champion:
    """The registry's champion as this evaluation found it."""

    version: Any = None  # its model version; None: there is no champion
    scored: AnyScored | None = None  # its scores; None without a champion or when not scored
    unscored: ChampionUnscored | None = None  # why a champion has no scores
    problem: str | None = None  # the cause of that, for the result and the log


def score_champion(model_name: str, rows: TestRows) -> Champion:
    """The champion (the version the alias pointed at when read) and its scores on these rows.
    One that cannot score them says why: ``baseline_incompatible`` (it expects other columns,
    types or classes, or it is a model of the other task) or ``champion_unusable`` (it does not
    load, e.g. an artifact fails its sha256 check or its files differ from what its run
    recorded, or it predicts no usable probabilities or values). An unreachable registry is
    raised."""
    version = alias_version(model_name, CHAMPION)
    if version is None:
        return Champion()
    uri = f"models:/{model_name}/{version.version}"
    try:
        model = load_model(uri)
    except ModelIntegrityError as exc:
        return unscored(version, "champion_unusable", f"{uri} fails its integrity check", exc)
    except Exception as exc:
        return unscored(version, "champion_unusable", f"{uri} does not load", exc)
    if (task := other_task(model, rows)) is not None:
        what = f"{uri} is a {task} model, the candidate a {rows.task} one"
        problem = IncompatibleModelError("a person decides whether to replace it")
        return unscored(version, "baseline_incompatible", what, problem)
    try:
        output = model.predict(rows.features)
        return Champion(version, score_output(output, rows.labels, rows.transform))
    except (UnusableOutputError, FloatingPointError) as exc:
        return unscored(version, "champion_unusable", f"{uri} predicts no usable output", exc)
    except (IncompatibleModelError, MlflowException, KeyError, ValueError) as exc:
        return unscored(version, "baseline_incompatible", f"{uri} cannot score {rows.uri}", exc)
    except Exception as exc:
        return unscored(version, "champion_unusable", f"{uri} failed to predict", exc)


def unscored(version: Any, reason: ChampionUnscored, what: str, exc: Exception) -> Champion:
    """A champion left without scores, with the cause logged; an unreachable registry is
    raised instead (the step fails and is retried, rather than judging without the champion)."""
    if is_unreachable(exc):
        raise exc
    problem = f"{what}: {first_line(exc)}"[:CHAMPION_PROBLEM_MAX_CHARS]
    log.warning("champion v%s not compared (%s): %s", version.version, reason, problem)
    return Champion(version, unscored=reason, problem=problem)


def other_task(model: Any, rows: TestRows) -> Task | None:
    """The task ``model`` was logged for when it is not the data's, else None (also when its
    signature does not say: its output then does, when it is scored)."""
    task = model_task(model)
    return task if task is not None and task != rows.task else None


def gate_scores(scored: Scored, slices: list[SliceAccuracy]) -> Scores:
    worst = worst_slice(slices)
    return Scores(
        scored.metrics.accuracy, None if worst is None else worst.accuracy, scored.metrics.ece
    )


def regression_gate_scores(scored: RegressionScored, slices: list[SliceError]) -> RegressionScores:
    worst = worst_error_slice(slices)
    return RegressionScores(
        scored.metrics.rmse, scored.metrics.r2, None if worst is None else worst.rmse
    )


def score_candidate(run_id: str, model_uri: str, rows: TestRows) -> AnyScored:
    """The candidate's scores; a StepError when its model fails its integrity check, is a
    model of the other task than the data, cannot load or score the rows, or predicts no
    usable probabilities or values."""
    try:
        model = load_model(model_uri)
    except ModelIntegrityError as exc:
        raise StepError(
            f"--run-id {run_id}: its model {model_uri} fails its integrity check, not loaded: "
            f"{first_line(exc)}"
        ) from exc
    if (task := other_task(model, rows)) is not None:
        raise StepError(
            f"--run-id {run_id}: its model {model_uri} is a {task} model, but the target of "
            f"{rows.uri} is a {rows.task} target: it cannot be evaluated on this data"
        )
    try:
        return score_output(model.predict(rows.features), rows.labels, rows.transform)
    except (UnusableOutputError, FloatingPointError) as exc:
        raise StepError(
            f"--run-id {run_id}: its model predicts no usable output on {rows.uri}: {exc}"
        ) from exc
    except (IncompatibleModelError, MlflowException, ValueError, KeyError) as exc:
        if is_unreachable(exc):
            raise
        raise StepError(
            f"--run-id {run_id}: its model cannot score {rows.uri}: {first_line(exc)}"
        ) from exc


Slices = dict[str, list[SliceAccuracy]] | dict[str, list[SliceError]]


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    interval: tuple[float, float] | None  # None without a comparable champion
    slices: Slices  # "candidate" and, when it scored, "champion"
    worst: SliceAccuracy | SliceError | None = None  # the candidate's worst slice
    baseline_worst: SliceAccuracy | SliceError | None = None  # the champion's


def judge(
    config: EvaluateConfig, rows: TestRows, candidate: Scored, baseline: Scored | None,
    unscored: ChampionUnscored | None,
) -> Judgement:  # fmt: skip
    """Classification: slices, the paired interval of the accuracy gain against the champion's
    scores (``baseline``, when it has them) and the gate's decision."""
    columns = rows.slice_columns
    slices = {"candidate": slice_accuracies(columns, candidate.correct, config.min_slice_size)}
    comparison, interval = None, None
    if baseline is not None:
        slices["champion"] = slice_accuracies(columns, baseline.correct, config.min_slice_size)
        interval = paired_bootstrap_interval(
            candidate.correct,
            baseline.correct,
            config.bootstrap_samples,
            config.confidence,
            config.bootstrap_seed,
        )
        comparison = Comparison(gate_scores(baseline, slices["champion"]), *interval)
    decision = decide(
        gate_scores(candidate, slices["candidate"]), comparison, config.thresholds, unscored
    )
    worst = worst_slice(slices["candidate"]), worst_slice(slices.get("champion", []))
    return Judgement(decision, interval, slices, *worst)


def judge_regression(
    config: EvaluateConfig,
    rows: TestRows,
    candidate: RegressionScored,
    baseline: RegressionScored | None,
    unscored: ChampionUnscored | None,
) -> Judgement:
    """Regression: per-slice RMSE, the paired interval of the RMSE reduction against the
    champion's scores (``baseline``, when it has them; same bootstrap settings as for accuracy)
    and the gate's decision."""
    columns, size = rows.slice_columns, config.min_slice_size
    slices = {"candidate": slice_errors(columns, candidate.squared_errors, size)}
    comparison, interval = None, None
    if baseline is not None:
        slices["champion"] = slice_errors(columns, baseline.squared_errors, size)
        interval = paired_rmse_reduction_interval(
            candidate.squared_errors,
            baseline.squared_errors,
            config.bootstrap_samples,
            config.confidence,
            config.bootstrap_seed,
        )
        champion_scores = regression_gate_scores(baseline, slices["champion"])
        comparison = RegressionComparison(champion_scores, *interval)
    decision = decide_regression(
        regression_gate_scores(candidate, slices["candidate"]),
        comparison,
        config.thresholds,
        unscored,
    )
    worst = worst_error_slice(slices["candidate"]), worst_error_slice(slices.get("champion", []))
    return Judgement(decision, interval, slices, *worst)


def shared_fields(
    config: EvaluateConfig, rows: TestRows, model_uri: str, champion: Champion, judged: Judgement
) -> dict[str, Any]:
    """The result's keys that are the same for either task."""
    low, high = judged.interval or (None, None)
    version = champion.version
    return {
        "task": rows.task,
        "should_deploy": judged.decision.should_deploy,
        "reason": judged.decision.reason,
        "improvement_low": low,
        "improvement_high": high,
        "confidence": config.confidence,
        "bootstrap_samples": config.bootstrap_samples,
        "champion_version": None if version is None else int(version.version),
        "champion_run_id": None if version is None else version.run_id,
        "champion_problem": champion.problem,
        "run_id": config.run_id,
        "model_path": model_uri,
        "model_name": config.model_name,
        "test_rows": len(rows.labels),
        "data_fingerprint": rows.fingerprint,
    }


def build_result(
    config: EvaluateConfig,
    rows: TestRows,
    model_uri: str,
    candidate: AnyScored,
    champion: Champion,
) -> tuple[EvaluateResult, Judgement]:
    """The decision and the result, for the data's task."""
    if isinstance(candidate, RegressionScored):
        return build_regression_result(config, rows, model_uri, candidate, champion)
    baseline = champion.scored
    assert baseline is None or isinstance(baseline, Scored)  # scored for the same task
    judged = judge(config, rows, candidate, baseline, champion.unscored)
    new, old = candidate.metrics, None if baseline is None else baseline.metrics
    result = EvaluateResult(
        **shared_fields(config, rows, model_uri, champion, judged),
        new_accuracy=new.accuracy,
        new_f1_score=new.f1_score,
        baseline_accuracy=None if old is None else old.accuracy,
        improvement=None if old is None else new.accuracy - old.accuracy,
        metrics=new,
        baseline_metrics=old,
        worst_slice=judged.worst,
        baseline_worst_slice=judged.baseline_worst,
    )
    return result, judged


def build_regression_result(
    config: EvaluateConfig,
    rows: TestRows,
    model_uri: str,
    candidate: RegressionScored,
    champion: Champion,
) -> tuple[EvaluateResult, Judgement]:
    """The decision and the result of a regression candidate."""
    baseline = champion.scored
    assert baseline is None or isinstance(baseline, RegressionScored)  # scored for the same task
    judged = judge_regression(config, rows, candidate, baseline, champion.unscored)
    new, old = candidate.metrics, None if baseline is None else baseline.metrics
    result = EvaluateResult(
        **shared_fields(config, rows, model_uri, champion, judged),
        new_rmse=new.rmse,
        baseline_rmse=None if old is None else old.rmse,
        improvement=None if old is None else old.rmse - new.rmse,
        metrics=new,
        baseline_metrics=old,
        worst_slice=judged.worst,
        baseline_worst_slice=judged.baseline_worst,
    )
    return result, judged


def figures_of(
    config: EvaluateConfig, rows: TestRows, candidate: AnyScored, champion: Champion
) -> dict[str, Any]:
    """The plots of the task (none with ``--no-plots``): the champion's beside the
    candidate's when it was scored on the same rows."""
    if not config.plots:
        return {}
    new = f"candidate run {config.run_id[:8]}"
    old = "" if champion.version is None else f"champion v{champion.version.version}"
    baseline = champion.scored
    if isinstance(candidate, RegressionScored):
        assert baseline is None or isinstance(baseline, RegressionScored)  # the same task
        values = None if baseline is None else PlottedValues(old, baseline)
        return regression_figures(PlottedValues(new, candidate), values)
    assert baseline is None or isinstance(baseline, Scored)
    plotted = None if baseline is None else Plotted(old, baseline)
    return evaluation_figures(Plotted(new, candidate), rows.transform.classes, plotted)


def summary_line(config: EvaluateConfig, result: EvaluateResult, judged: Judgement) -> str:
    """The one log line of the run: the task's headline metric, the champion's, the interval
    and the decision."""
    if result.task == "regression":
        metric, new, old, shown = "RMSE", result.new_rmse, result.baseline_rmse, ".4g"
        change, interval_shown = "RMSE reduction", "[{:+.4g}, {:+.4g}]"
    else:
        metric, new, old, shown = "accuracy", result.new_accuracy, result.baseline_accuracy, ".4f"
        change, interval_shown = "gain", "[{:+.4f}, {:+.4f}]"
    interval = "none" if judged.interval is None else interval_shown.format(*judged.interval)
    return (
        f"candidate {config.run_id} test {metric} {new:{shown}} vs champion "
        f"{'none' if old is None else format(old, shown)} ({change} interval {interval} at "
        f"{100 * config.confidence:.0f}%): "
        f"{'deploy' if result.should_deploy else 'keep champion'} ({result.reason})"
    )


def evaluate(config: EvaluateConfig) -> EvaluateResult:
    """Score, decide and record; the result names the decision and its reason."""
    rows = load_test_rows(config.data_path)
    with reaching_mlflow():
        model_uri = run_model_uri(config.run_id)
        candidate = score_candidate(config.run_id, model_uri, rows)
        champion = score_champion(config.model_name, rows)
        result, judged = build_result(config, rows, model_uri, candidate, champion)
        record_evaluation(result, judged.slices, figures_of(config, rows, candidate, champion))
    log.info("%s", summary_line(config, result, judged))
    return result
