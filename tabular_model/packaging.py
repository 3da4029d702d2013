"""Log a trained network to MLflow as the served pyfunc model (weights as safetensors)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
from safetensors.torch import save_file

from tabular_model import serving
from tabular_model.network import TabularMLP
from tabular_model.transform import TableTransform

MODEL_NAME_IN_RUN = "model"
SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")
PIP_REQUIREMENTS = ["torch>=2.10", "pandas>=2.2", "numpy>=1.26", "safetensors>=0.4", "mlflow>=3.1"]


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
        artifacts = write_artifacts(net, transform, Path(tmp))
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
            pip_requirements=PIP_REQUIREMENTS,
            model_config=model_config,
        )
