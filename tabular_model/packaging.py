"""Log a trained network to MLflow as the served pyfunc model (weights as safetensors)."""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from safetensors.torch import save_file

from tabular_model import integrity, serving
from tabular_model.network import TabularMLP
from tabular_model.transform import TableTransform

MODEL_NAME_IN_RUN = "model"
PACKAGE = Path(__file__).resolve().parent
SERVED_MODEL_CODE = PACKAGE / "served_model.py"
# What loading and predicting import, besides this package (which travels with the model).
RUNTIME_DISTRIBUTIONS = ("torch", "pandas", "numpy", "safetensors", "mlflow")


def pinned_requirements() -> list[str]:
    """The model's requirements pinned to the versions it was logged with (the public part of
    a version: ``2.13.0+cpu`` → ``2.13.0``, so a CUDA or CPU build can serve it alike)."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in RUNTIME_DISTRIBUTIONS]


def package_copy(folder: Path) -> str:
    """This package's source under ``folder`` (no bytecode), for the model's ``code`` entry:
    a loader needs nothing of the project but the model's own files."""
    target = folder / PACKAGE.name
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return str(target)


def input_schema(transform: TableTransform) -> Any:
    """The raw input columns, every one required (a missing column is refused by MLflow before
    the model runs, naming it); a missing value inside a column stays allowed.

    The column types are ``any`` because no MLflow 3 column type takes what honest callers send:
    a ``double`` column refuses int64 (only integers of up to 6 bytes, or 0/1 values, convert)
    and turns a JSON ``true`` into 1.0; a ``long`` column refuses floats, which integers become
    as soon as a value is missing; a ``string`` column refuses pandas ``category`` and boolean
    columns. The served model checks the types itself (``serving.checked_rows``): numbers of any
    int/float width for numeric columns, text, booleans, numbers or categories for categorical
    ones, refusing the rest naming the column."""
    from mlflow.types import ColSpec, Schema, TensorSpec
    from mlflow.types.schema import AnyType

    columns: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType(), name, required=True) for name in transform.input_columns
    ]
    return Schema(columns)


def write_artifacts(net: TabularMLP, transform: TableTransform, folder: Path) -> dict[str, str]:
    """Weights (safetensors), network config and transform (JSON) under ``folder``; returns
    {artifact name: path} as the served model's ``context.artifacts`` names them."""
    weights = folder / "weights.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(weights))
    network = folder / "network.json"
    network.write_text(json.dumps(net.config.to_dict(), indent=2))
    transform_file = folder / "transform.json"
    transform_file.write_text(json.dumps(transform.to_dict(), indent=2))
    return {
        serving.WEIGHTS: str(weights),
        serving.NETWORK: str(network),
        serving.TRANSFORM: str(transform_file),
    }


def output_schema(transform: TableTransform) -> Any:
    """What ``predict`` returns: the label column plus one float column per class (regression:
    the predicted number), derived from the transform rather than from a prediction, so the
    schema never depends on the weights."""
    from mlflow.models import infer_signature

    if transform.is_regression:  # one number per row, in the target's units
        return infer_signature(None, pd.DataFrame({"prediction": [0.0]})).outputs
    labels = list(transform.classes)
    example = pd.DataFrame({"prediction": labels})
    for label in labels:
        example[serving.probability_column(label)] = 0.0
    return infer_signature(None, example).outputs


def log_served_model(net: TabularMLP, transform: TableTransform, example: pd.DataFrame) -> Any:
    """Log the model under the active run and record the sha256 of its every file on the run
    (``integrity.record_logged_model``); returns MLflow's ModelInfo."""
    import mlflow
    from mlflow.models import ModelSignature

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "artifacts").mkdir()
        artifacts = write_artifacts(net, transform, Path(tmp) / "artifacts")
        # The checksums travel in the model's config (the MLmodel file), read back by
        # load_context, which refuses artifacts whose bytes changed since now.
        model_config = {serving.CHECKSUMS: serving.artifact_checksums(artifacts)}
        # Load what is about to be logged once, so a network that cannot load is never logged.
        serving.TabularClassifier().load_context(
            SimpleNamespace(artifacts=artifacts, model_config=model_config)
        )
        inputs = example[transform.input_columns]
        signature = ModelSignature(inputs=input_schema(transform), outputs=output_schema(transform))
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME_IN_RUN,
            python_model=str(SERVED_MODEL_CODE),
            artifacts=artifacts,
            signature=signature,
            input_example=inputs,
            pip_requirements=pinned_requirements(),
            code_paths=[package_copy(Path(tmp))],
            model_config=model_config,
        )
    integrity.record_logged_model(info.model_id, info.run_id)
    return info
