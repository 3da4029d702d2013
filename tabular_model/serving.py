"""The served model: it loads the fitted transform (JSON), the network config (JSON) and the
weights (safetensors) from the model's artifacts, takes raw rows and returns the original labels
plus one probability column per class. No pickle is involved: MLflow loads it from code
(``tabular_model/served_model.py``). The sha256 of every artifact, recorded in the model's config
when it was logged, is checked before anything is read from it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from mlflow.pyfunc import PythonModel
from safetensors.torch import load_file

from tabular_model.network import NetworkConfig, TabularMLP, as_tensors, predict_proba
from tabular_model.transform import TableTransform, decode_target, encode_features

WEIGHTS = "weights"
NETWORK = "network"
TRANSFORM = "transform"
ARTIFACTS = (WEIGHTS, NETWORK, TRANSFORM)
CHECKSUMS = "sha256"  # the model_config key holding {artifact name: hex digest}


class ArtifactIntegrityError(ValueError):
    """A model artifact is missing from the checksums or differs from what was logged."""


def probability_column(label: Any) -> str:
    return f"proba_{label}"


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_checksums(artifacts: Mapping[str, str]) -> dict[str, str]:
    """{artifact name: sha256 hex} of the model's artifact files (recorded at logging time)."""
    return {name: sha256_of(artifacts[name]) for name in ARTIFACTS}


def verify_artifacts(artifacts: Mapping[str, str], model_config: Mapping[str, Any] | None) -> None:
    """Refuse to load when an artifact's bytes differ from the sha256 recorded at logging time,
    or when no checksum was recorded for it (ArtifactIntegrityError naming the file)."""
    expected = (model_config or {}).get(CHECKSUMS) or {}
    for name in ARTIFACTS:
        path = artifacts[name]
        if name not in expected:
            raise ArtifactIntegrityError(
                f"model artifact {name!r} ({Path(path).name}) has no recorded sha256; "
                "refusing to load a model logged without checksums"
            )
        actual = sha256_of(path)
        if actual != expected[name]:
            raise ArtifactIntegrityError(
                f"model artifact {name!r} ({Path(path).name}) has sha256 {actual}, but "
                f"{expected[name]} was recorded when the model was logged: the file was "
                "changed; refusing to load it"
            )


class TabularClassifier(PythonModel):  # type: ignore[misc]
    """Raw rows (the input columns, without the target) → prediction + per-class probabilities."""

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        verify_artifacts(artifacts, getattr(context, "model_config", None))
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
