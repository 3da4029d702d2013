"""The evaluation: load the raw test rows, score the candidate and the champion on them, judge
them with the gate and record the result on the candidate's run."""

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
from contract.results import CHAMPION_PROBLEM_MAX_CHARS, EvaluateResult, SliceAccuracy
from evaluator.gate import ChampionUnscored, Comparison, Decision, Scores, Thresholds, decide
from evaluator.metrics import paired_bootstrap_interval, slice_accuracies, worst_slice
from evaluator.plots import Plotted, evaluation_figures
from evaluator.scoring import IncompatibleModelError, Scored, score
from tabular_model.integrity import ModelIntegrityError, load_verified_model
from tabular_model.transform import TableTransform, TransformError, encode_target

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
    """The raw test rows of a preprocess output, split into model input and encoded labels."""

    __test__ = False  # not a pytest class

    uri: str
    transform: TableTransform
    features: pd.DataFrame
    labels: np.ndarray
    fingerprint: str

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
    scored: Scored | None = None  # its scores; None without a champion or when not scored
    unscored: ChampionUnscored | None = None  # why a champion has no scores
    problem: str | None = None  # the cause of that, for the result and the log


def score_champion(model_name: str, rows: TestRows) -> Champion:
    """The champion (the version the alias pointed at when read) and its scores on these rows.
    One that cannot score them says why: ``baseline_incompatible`` (it expects other columns,
    types or classes) or ``champion_unusable`` (it does not load, e.g. an artifact fails its
    sha256 check or its files differ from what its run recorded, or it predicts no usable
    probabilities). An unreachable registry is raised."""
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
    try:
        return Champion(version, score(model.predict(rows.features), rows.labels, rows.transform))
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


def gate_scores(scored: Scored, slices: list[SliceAccuracy]) -> Scores:
    worst = worst_slice(slices)
    return Scores(
        scored.metrics.accuracy, None if worst is None else worst.accuracy, scored.metrics.ece
    )


def score_candidate(run_id: str, model_uri: str, rows: TestRows) -> Scored:
    """The candidate's scores; a StepError when its model fails its integrity check, cannot
    load or score the rows, or predicts no usable probabilities."""
    try:
        model = load_model(model_uri)
    except ModelIntegrityError as exc:
        raise StepError(
            f"--run-id {run_id}: its model {model_uri} fails its integrity check, not loaded: "
            f"{first_line(exc)}"
        ) from exc
    try:
        return score(model.predict(rows.features), rows.labels, rows.transform)
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


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    interval: tuple[float, float] | None  # None without a comparable champion
    slices: dict[str, list[SliceAccuracy]]  # "candidate" and, when it scored, "champion"


def judge(
    config: EvaluateConfig, rows: TestRows, candidate: Scored, champion: Champion
) -> Judgement:
    """Slices, the paired interval against the champion's scores (when it has them) and the
    gate's decision."""
    columns = rows.slice_columns
    slices = {"candidate": slice_accuracies(columns, candidate.correct, config.min_slice_size)}
    comparison, interval = None, None
    if champion.scored is not None:
        baseline = champion.scored
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
        gate_scores(candidate, slices["candidate"]),
        comparison,
        config.thresholds,
        champion.unscored,
    )
    return Judgement(decision, interval, slices)


def build_result(
    config: EvaluateConfig, rows: TestRows, model_uri: str, candidate: Scored, champion: Champion
) -> tuple[EvaluateResult, Judgement]:
    """The decision and the result."""
    judgement = judge(config, rows, candidate, champion)
    decision, baseline = judgement.decision, champion.scored
    low, high = judgement.interval or (None, None)
    result = EvaluateResult(
        should_deploy=decision.should_deploy,
        reason=decision.reason,
        new_accuracy=candidate.metrics.accuracy,
        new_f1_score=candidate.metrics.f1_score,
        baseline_accuracy=None if baseline is None else baseline.metrics.accuracy,
        improvement=None
        if baseline is None
        else candidate.metrics.accuracy - baseline.metrics.accuracy,
        improvement_low=low,
        improvement_high=high,
        confidence=config.confidence,
        bootstrap_samples=config.bootstrap_samples,
        metrics=candidate.metrics,
        baseline_metrics=None if baseline is None else baseline.metrics,
        worst_slice=worst_slice(judgement.slices["candidate"]),
        baseline_worst_slice=worst_slice(judgement.slices.get("champion", [])),
        champion_version=None if champion.version is None else int(champion.version.version),
        champion_run_id=None if champion.version is None else champion.version.run_id,
        champion_problem=champion.problem,
        run_id=config.run_id,
        model_path=model_uri,
        model_name=config.model_name,
        test_rows=len(rows.labels),
        data_fingerprint=rows.fingerprint,
    )
    return result, judgement


def evaluate(config: EvaluateConfig) -> EvaluateResult:
    """Score, decide and record; the result names the decision and its reason."""
    rows = load_test_rows(config.data_path)
    with reaching_mlflow():
        model_uri = run_model_uri(config.run_id)
        candidate = score_candidate(config.run_id, model_uri, rows)
        champion = score_champion(config.model_name, rows)
        result, judgement = build_result(config, rows, model_uri, candidate, champion)
        figures = (
            evaluation_figures(
                Plotted(f"candidate run {config.run_id[:8]}", candidate),
                rows.transform.classes,
                None
                if champion.scored is None
                else Plotted(f"champion v{champion.version.version}", champion.scored),
            )
            if config.plots
            else {}
        )
        record_evaluation(result, judgement.slices, figures)
    log.info(
        "candidate %s test accuracy %.4f vs champion %s (gain interval %s at %.0f%%): %s (%s)",
        config.run_id,
        result.new_accuracy,
        "none" if result.baseline_accuracy is None else f"{result.baseline_accuracy:.4f}",
        "none" if judgement.interval is None else "[{:+.4f}, {:+.4f}]".format(*judgement.interval),
        100 * config.confidence,
        "deploy" if result.should_deploy else "keep champion",
        result.reason,
    )
    return result
