"""``python -m evaluator``: score the candidate run's model and the registry's ``champion`` on the
same raw test rows (never an old logged number) and decide whether to deploy."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException

from contract.results import EvaluateResult
from contract.step import StepArgumentParser, StepError, run_step
from contract.tracking import CHAMPION, alias_version, configure_mlflow, run_model_uri
from evaluator.gate import Decision, decide
from evaluator.scoring import IncompatibleModelError, score
from preprocess import dataset, io
from preprocess.transform import TableTransform
from trainer.metrics import ClassificationMetrics

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = StepArgumentParser(prog="python -m evaluator", description=__doc__)
    p.add_argument("--run-id", required=True, help="MLflow run of the candidate")
    p.add_argument("--data-path", required=True, help="the --output folder of preprocess")
    p.add_argument("--model-name", required=True, help="registered model holding the champion")
    p.add_argument("--min-accuracy", type=float, default=0.0, help="accuracy floor on test")
    p.add_argument(
        "--min-improvement",
        type=float,
        default=0.0,
        help="required accuracy gain over the champion",
    )
    return p


def predict(model_uri: str, features: pd.DataFrame) -> pd.DataFrame:
    mlflow = configure_mlflow()
    return mlflow.pyfunc.load_model(model_uri).predict(features)  # type: ignore[no-any-return]


def score_champion(
    model_name: str, features: pd.DataFrame, labels: pd.Series, transform: TableTransform
) -> tuple[Any, ClassificationMetrics | None]:
    """The champion's version and its metrics on these rows; metrics None when it cannot score
    them (a different input schema or label set)."""
    champion = alias_version(model_name, CHAMPION)
    if champion is None:
        return None, None
    try:
        return champion, score(
            predict(f"models:/{model_name}@{CHAMPION}", features), labels, transform
        )
    except (IncompatibleModelError, MlflowException, ValueError, KeyError) as exc:
        # MLflow's schema errors print the whole input frame; the first line says enough.
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        log.warning("champion v%s cannot score this test data: %s", champion.version, reason)
        return champion, None


def record_on_run(run_id: str, candidate: ClassificationMetrics, decision: Decision) -> None:
    """Keep the test metrics and the decision on the candidate's run."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = {
        "test_accuracy": candidate.accuracy,
        "test_f1_score": candidate.f1_score,
        "test_loss": candidate.loss,
    }
    tags = {
        "evaluation.reason": decision.reason,
        "evaluation.should_deploy": str(decision.should_deploy),
    }
    configure_mlflow().MlflowClient().log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )


def evaluate(args: argparse.Namespace) -> EvaluateResult:
    data_path = args.data_path.rstrip("/")
    transform = dataset.load_transform(data_path)
    test_uri = dataset.raw_uri(data_path, "test")
    test = io.read_table(test_uri)
    if test.empty:
        raise StepError(f"{test_uri} has no rows")
    if transform.target not in test.columns:
        raise StepError(f"{test_uri}: target column {transform.target!r} not found")
    labels, features = test[transform.target], test.drop(columns=[transform.target])
    model_uri = run_model_uri(args.run_id)
    candidate = score(predict(model_uri, features), labels, transform)
    champion, baseline = score_champion(args.model_name, features, labels, transform)
    if champion is not None and baseline is None:
        decision = Decision(False, "baseline_incompatible", None)
    else:
        baseline_accuracy = None if baseline is None else baseline.accuracy
        decision = decide(
            candidate.accuracy, baseline_accuracy, args.min_accuracy, args.min_improvement
        )
    record_on_run(args.run_id, candidate, decision)
    log.info(
        "candidate %s test accuracy %.4f vs champion %s: %s (%s)",
        args.run_id,
        candidate.accuracy,
        "none" if baseline is None else f"{baseline.accuracy:.4f}",
        "deploy" if decision.should_deploy else "keep champion",
        decision.reason,
    )
    return EvaluateResult(
        should_deploy=decision.should_deploy,
        reason=decision.reason,
        new_accuracy=candidate.accuracy,
        new_f1_score=candidate.f1_score,
        baseline_accuracy=None if baseline is None else baseline.accuracy,
        improvement=decision.improvement,
        champion_version=None if champion is None else int(champion.version),
        run_id=args.run_id,
        model_path=model_uri,
        model_name=args.model_name,
        test_rows=len(test),
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_step("evaluate", build_parser(), evaluate, argv)


def main_entry() -> None:
    raise SystemExit(main())
