"""The readable summary of a pipeline run: data, sweep table, evaluation and deployment."""

from __future__ import annotations

from typing import Any

from tabular_pipeline.results import task_of


def drift_note(drift: dict[str, Any] | None) -> str:
    """`` (drift: ...)`` when the data was compared with a reference, else nothing."""
    if drift is None:
        return ""
    drifted = ", ".join(drift["drifted_columns"]) or "none"
    where = f" in {drift['max_psi_column']}" if drift["max_psi_column"] else ""
    return (
        f" (drift vs {drift['reference_uri']}: max PSI {drift['max_psi']:.3f}{where}; "
        f"drifted: {drifted})"
    )


def render_summary(
    data: dict[str, Any],
    trials: list[dict[str, Any]],
    best_run_id: str,
    decision: dict[str, Any],
    deployed: dict[str, Any] | None,
) -> str:
    """``trials`` holds ``{"config": {...}, "result": train result or None}`` per sweep member;
    ``data`` holds the validate and preprocess results."""
    validated, prepared = data["validate"], data["preprocess"]
    counts = prepared["row_counts"]
    metric, shown = ("rmse", ".4g") if task_of(prepared) == "regression" else ("accuracy", ".4f")
    columns = sorted({name for trial in trials for name in trial["config"]})
    lines = [
        f"Data: {validated['row_count']} rows x {validated['column_count']} columns from "
        f"{validated['source']} ({validated['anomaly_counts']['warning']} warnings); "
        f"split {counts['train']}/{counts['val']}/{counts['test']}, "
        f"{prepared['feature_count']} features",
        f"Validation report: {validated['html_report_uri']}{drift_note(validated['drift'])}",
        "",
        "Sweep (metrics on the validation split):",
        "  #  " + " ".join(f"{c:>12}" for c in columns) + f" {metric:>9} {'loss':>7}"
        f" {'samples/s':>10}  run",
    ]
    for i, trial in enumerate(trials):
        head = f"  {i:<2} " + " ".join(f"{trial['config'].get(c, '-')!s:>12}" for c in columns)
        result = trial["result"]
        if result is None:
            lines.append(head + "  failed")
            continue
        mark = "  <- best" if result["run_id"] == best_run_id else ""
        lines.append(
            head + f" {result[metric]:>9{shown}} {result['loss']:>7.4f}"
            f" {result['samples_per_sec']:>10.0f}  {result['run_id'][:12]}{mark}"
        )
    lines += ["", evaluation_line(decision)]
    if decision.get("champion_problem"):
        lines.append(f"  The champion's problem: {decision['champion_problem']}")
    if deployed:
        lines.append(
            f"Deployed: {deployed['model_name']} version {deployed['version']} is now "
            f"@{deployed['alias']} (previous: {deployed['previous_version']})"
        )
    return "\n".join(lines)


def evaluation_line(decision: dict[str, Any]) -> str:
    """The candidate's and the champion's test score, the interval of the gain and the
    decision: accuracy, or for regression RMSE and its reduction in the target's units."""
    if task_of(decision) == "regression":
        score, baseline, gain, shown = "RMSE ", decision["baseline_rmse"], "RMSE reduction", ".4g"
        new = decision["new_rmse"]
    else:
        score, baseline, gain, shown = "", decision["baseline_accuracy"], "gain", ".4f"
        new = decision["new_accuracy"]
    interval = ""
    if decision["improvement_low"] is not None:
        interval = (
            f", {gain} {decision['improvement']:+{shown}} ({decision['confidence']:.0%} interval "
            f"{decision['improvement_low']:+{shown}} to {decision['improvement_high']:+{shown}})"
        )
    return (
        f"Evaluation on the test split: candidate {score}{new:{shown}}, champion "
        f"{'none' if baseline is None else f'{baseline:{shown}}'}{interval} -> "
        f"{'deploy' if decision['should_deploy'] else 'keep the champion'} ({decision['reason']})"
    )
