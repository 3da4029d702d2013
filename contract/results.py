"""One Python definition per step's result; the JSON Schemas in ``contract/schemas`` derive from
these models (``make schemas``) and are never edited by hand."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

Hyperparameter = str | int | float | bool


class StepResult(BaseModel):
    """Base of every result: strict (no unknown keys, no NaN/inf) and immutable."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    step: ClassVar[str]
    schema_version: Literal[1] = 1


class AnomalyCounts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    error: NonNegativeInt
    warning: NonNegativeInt


class SplitCounts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    train: NonNegativeInt
    val: NonNegativeInt
    test: NonNegativeInt


class DriftSummary(BaseModel):
    """Drift against the reference data, in brief (report.html and anomalies.json have it all)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    reference_uri: str
    columns_compared: NonNegativeInt
    max_psi: float = Field(ge=0, description="largest population stability index of a column")
    max_psi_column: str | None
    drifted_count: NonNegativeInt = Field(description="columns with PSI over the warning level")
    drifted_columns: list[str] = Field(max_length=20, description="the most drifted first")


class ValidateResult(StepResult):
    """Data validation passed (errors make the step fail; warnings are counted here)."""

    step: ClassVar[str] = "validate"
    source: str = Field(description="URI of the validated data")
    date: str = Field(description="logical date of the data, YYYY-MM-DD")
    row_count: NonNegativeInt
    column_count: NonNegativeInt
    anomaly_counts: AnomalyCounts
    schema_uri: str = Field(description="the schema the data was checked against (or inferred)")
    schema_origin: Literal["given", "store", "reference", "data"] = Field(
        description="--schema, the --schema-store, inferred from --reference or from this data"
    )
    report_uri: str = Field(description="the anomalies report (JSON)")
    html_report_uri: str = Field(description="the human-readable report (self-contained HTML)")
    fingerprint: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="sha256 of the validated data's bytes"
    )
    drift: DriftSummary | None = Field(description="None without --reference")


Task = Literal["classification", "regression"]


class TargetScaling(BaseModel):
    """How a regression target is standardised for training (the served model inverts it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    center: float = Field(description="mean of the train target (of log1p of it with log)")
    scale: float = Field(gt=0, description="its standard deviation")
    log: bool = Field(description="the target is learnt as log(1 + target)")


def task_keys(classification: list[str], regression: list[str]) -> Any:
    """A schema hook: every key is required; ``classification`` keys are non-null for a
    classification result and null for a regression one, and ``regression`` keys the other way
    round (the model validator says the same in Python)."""

    def rule(required: list[str], nulls: list[str]) -> dict[str, Any]:
        return {
            "properties": {
                **{key: {"not": {"type": "null"}} for key in required},
                **{key: {"type": "null"} for key in nulls},
            }
        }

    def extra(schema: dict[str, Any]) -> None:
        # The defaults below serve Python callers of the classification shape; a written
        # result carries every key, so the schema requires each.
        schema["required"] = sorted({*schema["required"], *schema["properties"]})
        schema["allOf"] = [
            {
                "if": {"properties": {"task": {"const": "classification"}}},
                "then": rule(classification, regression),
                "else": rule(regression, classification),
            }
        ]

    return extra


def check_task_keys(
    result: BaseModel, task: str, classification: list[str], regression: list[str]
) -> None:
    required, nulls = (
        (classification, regression) if task == "classification" else (regression, classification)
    )
    missing = [key for key in required if getattr(result, key) is None]
    extra = [key for key in nulls if getattr(result, key) is not None]
    if missing or extra:
        raise ValueError(
            f"a {task} result needs {missing} and must leave {extra} null"
            if missing
            else f"a {task} result must leave {extra} null"
        )


PREPROCESS_KEYS = (["classes"], ["target_scaling"])


class PreprocessResult(StepResult):
    """Train/val/test splits and the fitted transform, all under ``output_uri``. Version 2: the
    task, with ``classes`` (classification) or ``target_scaling`` (regression)."""

    model_config = ConfigDict(json_schema_extra=task_keys(*PREPROCESS_KEYS))

    step: ClassVar[str] = "preprocess"
    schema_version: Literal[2] = 2  # type: ignore[assignment]  # a later version of the shape
    output_uri: str = Field(description="the folder to pass to the trainer as --data-path")
    train_uri: str
    val_uri: str
    test_uri: str
    raw_test_uri: str = Field(description="untransformed test rows, scored by the evaluator")
    transform_uri: str
    manifest_uri: str = Field(description="written last: the output is complete")
    row_counts: SplitCounts
    feature_count: NonNegativeInt
    target: str
    task: Task = "classification"
    classes: list[str | int | float | bool] | None = Field(
        min_length=2, description="classification: the labels in class-index order; else null"
    )
    target_scaling: TargetScaling | None = Field(None, description="regression; else null")
    fingerprint: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="sha256 of the input data's bytes"
    )

    @model_validator(mode="after")
    def _task_keys(self) -> PreprocessResult:
        check_task_keys(self, self.task, *PREPROCESS_KEYS)
        return self


TRAIN_KEYS = (["accuracy", "f1_score"], ["rmse", "mae", "r2"])


class TrainResult(StepResult):
    """A trained candidate; every metric is measured on the validation split. Version 2: the
    task, with ``accuracy`` and ``f1_score`` (classification) or ``rmse``, ``mae`` and ``r2``
    (regression, in the target's units); the other task's keys are null."""

    model_config = ConfigDict(json_schema_extra=task_keys(*TRAIN_KEYS))

    step: ClassVar[str] = "train"
    schema_version: Literal[2] = 2  # type: ignore[assignment]  # a later version of the shape
    task: Task = "classification"
    accuracy: float | None = Field(None, ge=0, le=1)
    f1_score: float | None = Field(None, ge=0, le=1)
    rmse: float | None = Field(None, ge=0, description="root mean squared error")
    mae: float | None = Field(None, ge=0, description="mean absolute error")
    r2: float | None = Field(None, le=1, description="coefficient of determination")
    loss: float = Field(
        ge=0,
        description="validation loss: cross-entropy, or the regression loss on the "
        "standardised target",
    )
    model_path: str = Field(description="MLflow model URI of the logged model")
    run_id: str
    experiment_name: str
    samples_per_sec: float = Field(ge=0, description="training samples / training-loop wall time")
    epochs: NonNegativeInt
    device: str
    hyperparameters: dict[str, Hyperparameter]
    world_size: int = Field(ge=1, description="data-parallel processes (torchrun)")
    resumed: bool = Field(description="continued from a checkpoint of an earlier attempt")
    data_fingerprint: str = Field(
        description="sha256 of the data trained on (from the preprocess manifest)"
    )

    @model_validator(mode="after")
    def _task_keys(self) -> TrainResult:
        check_task_keys(self, self.task, *TRAIN_KEYS)
        return self


CHAMPION_PROBLEM_MAX_CHARS = 1000  # EvaluateResult.champion_problem: a cause, not a log

DeployReason = Literal[
    "first_model",
    "promoted",
    "below_floor",
    "not_better",
    "baseline_incompatible",
    "champion_unusable",
    "slice_regression",
    "calibration_regression",
]


class EvaluationMetrics(BaseModel):
    """One classification model's metrics on the test rows."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    accuracy: float = Field(ge=0, le=1)
    f1_score: float = Field(ge=0, le=1, description="binary F1 of the second class, else macro")
    roc_auc: float | None = Field(
        ge=0, le=1, description="binary, or macro one-vs-rest; null when a class is absent"
    )
    log_loss: float = Field(ge=0)
    brier_score: float = Field(ge=0, le=2, description="multi-class Brier score (binary: 0..1)")
    ece: float = Field(ge=0, le=1, description="expected calibration error of the top label")


class RegressionEvaluationMetrics(BaseModel):
    """One regression model's metrics on the test rows, in the target's units."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    rmse: float = Field(ge=0, description="root mean squared error")
    mae: float = Field(ge=0, description="mean absolute error")
    r2: float = Field(le=1, description="coefficient of determination (0: the test rows' mean)")


class SliceAccuracy(BaseModel):
    """Accuracy on the rows of one value of one categorical column."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    column: str
    value: str = Field(description="the category, or <missing>")
    rows: NonNegativeInt
    accuracy: float = Field(ge=0, le=1)


class SliceError(BaseModel):
    """The root mean squared error on the rows of one value of one categorical column."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    column: str
    value: str = Field(description="the category, or <missing>")
    rows: NonNegativeInt
    rmse: float = Field(ge=0)


# Keys of one task only: (classification, regression). The new model's headline metrics are
# required for their task; the champion's (null without a champion) are null for the other task.
EVALUATE_KEYS = (["new_accuracy", "new_f1_score"], ["new_rmse"])
EVALUATE_BASELINE_KEYS = (["baseline_accuracy"], ["baseline_rmse"])
# The models of the keys whose shape follows the task: (classification, regression).
EVALUATE_MODELS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "metrics": (EvaluationMetrics, RegressionEvaluationMetrics),
    "baseline_metrics": (EvaluationMetrics, RegressionEvaluationMetrics),
    "worst_slice": (SliceAccuracy, SliceError),
    "baseline_worst_slice": (SliceAccuracy, SliceError),
}


def evaluate_schema(schema: dict[str, Any]) -> None:
    """Every key required (``champion_problem`` and the keys of version 2 have defaults only for
    Python callers); the task's keys as ``task_keys`` gives them, plus: the champion's headline
    metric of the other task is null, and ``metrics``, ``worst_slice`` and their baselines are
    of the task's model (the union's member chosen by ``task``); calibration_regression is no
    reason for regression."""
    task_keys(*EVALUATE_KEYS)(schema)
    branches = schema["allOf"][0]
    for position, branch in enumerate(("then", "else")):
        rule = branches[branch]["properties"]
        rule[EVALUATE_BASELINE_KEYS[1 - position][0]] = {"type": "null"}
        for key, models in EVALUATE_MODELS.items():
            # The union's member as pydantic refers to it at this point (it renames refs later).
            (ref,) = [
                member
                for member in schema["properties"][key]["anyOf"]
                if re.search(
                    rf"(?<![A-Za-z]){models[position].__name__}(?![A-Za-z])", member.get("$ref", "")
                )
            ]
            rule[key] = dict(ref) if key == "metrics" else {"anyOf": [dict(ref), {"type": "null"}]}
    branches["else"]["properties"]["reason"] = {"not": {"const": "calibration_regression"}}


def upgrade_version_1(data: Any) -> Any:
    """A version 1 evaluation (recorded on a run by an earlier image; all were classification)
    read as version 2, which has the same keys for classification plus defaults for the new."""
    if isinstance(data, dict) and data.get("schema_version") == 1 and "task" not in data:
        return {**data, "schema_version": 2}
    return data


class EvaluateResult(StepResult):
    """The promotion decision for a candidate against the current champion, on the test split.
    Version 2: the task; classification carries ``new_accuracy``, ``new_f1_score`` and
    ``baseline_accuracy`` as version 1 did, regression ``new_rmse`` and ``baseline_rmse`` (the
    target's units) and an improvement that is the RMSE's reduction; ``metrics``,
    ``worst_slice`` and their baselines are of the task's model."""

    model_config = ConfigDict(json_schema_extra=evaluate_schema)

    step: ClassVar[str] = "evaluate"
    schema_version: Literal[2] = 2  # type: ignore[assignment]  # a later version of the shape
    task: Task = "classification"
    should_deploy: bool
    reason: DeployReason
    new_accuracy: float | None = Field(None, ge=0, le=1, description="classification; else null")
    new_f1_score: float | None = Field(None, ge=0, le=1, description="classification; else null")
    new_rmse: float | None = Field(None, ge=0, description="regression; else null")
    baseline_accuracy: float | None = Field(
        None, ge=0, le=1, description="classification; null when no champion, and for regression"
    )
    baseline_rmse: float | None = Field(
        None, ge=0, description="regression; null when no champion, and for classification"
    )
    improvement: float | None = Field(
        description="classification: new_accuracy - baseline_accuracy; regression: "
        "baseline_rmse - new_rmse (positive: the candidate is better)"
    )
    improvement_low: float | None = Field(
        description="lower bound of the paired bootstrap interval of the improvement"
    )
    improvement_high: float | None = Field(description="upper bound of that interval")
    confidence: float = Field(gt=0, lt=1, description="the interval's confidence level")
    bootstrap_samples: int = Field(ge=1)
    metrics: EvaluationMetrics | RegressionEvaluationMetrics = Field(
        description="the candidate's test metrics (the task's)"
    )
    baseline_metrics: EvaluationMetrics | RegressionEvaluationMetrics | None = Field(
        description="the champion's, same rows"
    )
    worst_slice: SliceAccuracy | SliceError | None = Field(
        description="the candidate's worst slice: least accurate, or highest RMSE"
    )
    baseline_worst_slice: SliceAccuracy | SliceError | None = Field(description="the champion's")
    champion_version: int | None = Field(description="the champion compared; pass it to deploy")
    champion_run_id: str | None
    champion_problem: str | None = Field(
        default=None,
        max_length=CHAMPION_PROBLEM_MAX_CHARS,
        description="why the champion was not compared (baseline_incompatible: it cannot score "
        "this data, or it is a model of the other task; champion_unusable: it does not load or "
        "predicts no usable output); null when it was compared or there is none",
    )
    run_id: str
    model_path: str
    model_name: str
    test_rows: NonNegativeInt
    data_fingerprint: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="of the raw test rows scored"
    )

    @model_validator(mode="before")
    @classmethod
    def _read_version_1(cls, data: Any) -> Any:
        return upgrade_version_1(data)

    @model_validator(mode="after")
    def _task_keys(self) -> EvaluateResult:
        check_task_keys(self, self.task, *EVALUATE_KEYS)
        position = 0 if self.task == "classification" else 1
        other = EVALUATE_BASELINE_KEYS[1 - position][0]
        if getattr(self, other) is not None:
            raise ValueError(f"a {self.task} result must leave {[other]} null")
        for key, models in EVALUATE_MODELS.items():
            value = getattr(self, key)
            if value is not None and not isinstance(value, models[position]):
                raise ValueError(
                    f"a {self.task} result's {key} must be {models[position].__name__}"
                )
        if self.task == "regression" and self.reason == "calibration_regression":
            raise ValueError("calibration_regression is not a reason for regression")
        return self


class DeployResult(StepResult):
    """The registry state after a deploy or a rollback."""

    step: ClassVar[str] = "deploy"
    action: Literal["deploy", "rollback"]
    model_name: str
    version: int = Field(ge=1)
    alias: str
    previous_version: int | None = Field(description="now previous_champion")
    run_id: str | None
    registered: bool = Field(description="false when the version already existed (a rerun)")
    alias_moved: bool = Field(description="false when the version already was champion")
    smoke_test_rows: NonNegativeInt = Field(description="raw rows the new version predicted")


class ScoreResult(StepResult):
    """A file scored with a registered model: predictions written whole, with a manifest."""

    step: ClassVar[str] = "score"
    model_uri: str = Field(description="the model as given, e.g. models:/NAME@champion")
    model_name: str
    model_version: int = Field(ge=1, description="the version the URI resolved to and scored")
    model_run_id: str = Field(description="the run that logged that version")
    input_uri: str
    input_fingerprint: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="sha256 of the input data's bytes"
    )
    output_uri: str = Field(description="predictions and class probabilities (parquet or CSV)")
    output_format: Literal["parquet", "csv"]
    output_sha256: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="of the output file")
    manifest_uri: str = Field(description="<output>.manifest.json, written after the output")
    rows: int = Field(ge=1, description="rows scored (every input row, in input order)")
    batches: int = Field(ge=1, description="batches the input was read and scored in")
    columns: list[str] = Field(description="the output's columns: kept input columns first")


RESULT_MODELS: dict[str, type[StepResult]] = {
    model.step: model
    for model in (
        ValidateResult,
        PreprocessResult,
        TrainResult,
        EvaluateResult,
        DeployResult,
        ScoreResult,
    )
}
