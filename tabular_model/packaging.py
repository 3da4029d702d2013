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

from tabular_model import serving
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
    """Raw input columns, all optional since the model encodes missing values itself. Numeric
    columns take any numeric type: MLflow refuses int64 for a ``double`` column, and integers
    become floats as soon as a value is missing; the model coerces them with ``pd.to_numeric``."""
    from mlflow.types import ColSpec, Schema, TensorSpec
    from mlflow.types.schema import AnyType

    columns: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType(), c.name, required=False) for c in transform.numeric
    ]
    columns += [ColSpec("string", c.name, required=False) for c in transform.categorical]
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


def log_served_model(net: TabularMLP, transform: TableTransform, example: pd.DataFrame) -> Any:
    """Log the model under the active run; returns MLflow's ModelInfo."""
    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "artifacts").mkdir()
        artifacts = write_artifacts(net, transform, Path(tmp) / "artifacts")
        # The checksums travel in the model's config (the MLmodel file), read back by
        # load_context, which refuses artifacts whose bytes changed since now.
        model_config = {serving.CHECKSUMS: serving.artifact_checksums(artifacts)}
        model = serving.TabularClassifier()
        model.load_context(SimpleNamespace(artifacts=artifacts, model_config=model_config))
        inputs = example[transform.input_columns]
        signature = ModelSignature(
            inputs=input_schema(transform),
            outputs=infer_signature(None, model.predict(None, inputs)).outputs,
        )
        return mlflow.pyfunc.log_model(
            name=MODEL_NAME_IN_RUN,
            python_model=str(SERVED_MODEL_CODE),
            artifacts=artifacts,
            signature=signature,
            input_example=inputs,
            pip_requirements=pinned_requirements(),
            code_paths=[package_copy(Path(tmp))],
            model_config=model_config,
        )
