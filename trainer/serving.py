"""The served model: it loads the fitted transform (JSON), the network config (JSON) and the
weights (safetensors) from the model's artifacts, takes raw rows and returns the original labels
plus one probability column per class. No pickle is involved: MLflow loads it from code
(``trainer/served_model.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from mlflow.pyfunc import PythonModel
from safetensors.torch import load_file

from preprocess.transform import TableTransform, decode_target, encode_features
from trainer.network import NetworkConfig, TabularMLP, as_tensors, predict_proba

WEIGHTS = "weights"
NETWORK = "network"
TRANSFORM = "transform"


def probability_column(label: Any) -> str:
    return f"proba_{label}"


class TabularClassifier(PythonModel):  # type: ignore[misc]
    """Raw rows (the input columns, without the target) → prediction + per-class probabilities."""

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        self.transform = TableTransform.from_dict(
            json.loads(Path(artifacts[TRANSFORM]).read_text())
        )
        config = NetworkConfig.from_dict(json.loads(Path(artifacts[NETWORK]).read_text()))
        self.net = TabularMLP(config)
        self.net.load_state_dict(load_file(artifacts[WEIGHTS]))
        self.net.eval()

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        features = encode_features(self.transform, model_input)
        numeric, categorical = as_tensors(
            features.numeric, features.categorical, torch.device("cpu")
        )
        probabilities = predict_proba(self.net, numeric, categorical).numpy()
        out = pd.DataFrame({"prediction": decode_target(self.transform, probabilities.argmax(1))})
        for i, label in enumerate(self.transform.classes):
            out[probability_column(label)] = probabilities[:, i]
        return out
