"""Training/serving parity: raw rows through the served model (``tabular_model.serving``, loaded
from its artifacts) give exactly the probabilities of the network on the encoded split that
``python -m preprocess`` wrote for the same rows, for every scaling, with missing values,
infrequent and unseen categories."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from common import dataset
from demo.sample_data import TARGET
from preprocess.cli import main
from tabular_model import serving
from tabular_model.network import NetworkConfig, TabularMLP, as_tensors, predict_proba
from tabular_model.transform import OTHER_CODE, TableTransform


@pytest.fixture
def raw_with_rare_values(sample_frame: pd.DataFrame, tmp_path: Path) -> Path:
    """The sample data plus a city column of 400 values, most of them rarer than the default
    --min-frequency, some missing."""
    rng = np.random.default_rng(5)
    frame = sample_frame.copy()
    city = pd.Series([f"city-{i}" for i in rng.integers(0, 400, len(frame))], dtype=object)
    frame["city"] = city.mask(rng.random(len(frame)) < 0.05)
    path = tmp_path / "raw.parquet"
    frame.to_parquet(path, index=False)
    return path


def served_model(transform_file: Path, folder: Path) -> serving.TabularClassifier:
    """An untrained network over the transform, saved and loaded as the served model is."""
    transform = json.loads(transform_file.read_text())
    loaded = TableTransform.from_dict(transform)
    torch.manual_seed(0)
    config = NetworkConfig(
        numeric_features=len(loaded.numeric_feature_names),
        cardinalities=tuple(c.cardinality for c in loaded.categorical),
        n_classes=len(loaded.classes),
        width=16,
        depth=2,
        dropout=0.0,
    )
    net = TabularMLP(config).eval()
    artifacts = {
        serving.WEIGHTS: str(folder / "weights.safetensors"),
        serving.NETWORK: str(folder / "network.json"),
        serving.TRANSFORM: str(transform_file),
    }
    save_file(net.state_dict(), artifacts[serving.WEIGHTS])
    Path(artifacts[serving.NETWORK]).write_text(json.dumps(config.to_dict()))
    model = serving.TabularClassifier()
    checksums = {serving.CHECKSUMS: serving.artifact_checksums(artifacts)}
    model.load_context(SimpleNamespace(artifacts=artifacts, model_config=checksums))
    return model


@pytest.mark.parametrize("scaling", ["robust", "quantile", "standard"])
def test_served_model_matches_the_network_on_the_encoded_split(
    scaling: str, raw_with_rare_values: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ["--input", str(raw_with_rare_values), "--output", str(out), "--target", TARGET]
    argv += ["--numeric-scaling", scaling, "--batch-rows", "700"]
    assert main([*argv, "--in-memory-limit-mb", "0" if scaling == "robust" else "100"]) == 0
    model = served_model(out / "transform.json", tmp_path)
    transform = model.transform
    encoded = dataset.load_split(str(out), transform, "test")
    city = [c.name for c in transform.categorical].index("city")
    codes = encoded.categorical[:, city]
    assert (codes == OTHER_CODE).any() and (codes == 0).any() and (codes > OTHER_CODE).any()

    numeric, categorical = as_tensors(encoded.numeric, encoded.categorical, torch.device("cpu"))
    expected = predict_proba(model.net, numeric, categorical).numpy()
    raw = pd.read_parquet(out / "raw" / "test.parquet").drop(columns=[TARGET])
    served = model.predict(None, raw)
    columns = [serving.probability_column(label) for label in transform.classes]
    np.testing.assert_allclose(served[columns].to_numpy(), expected, rtol=0, atol=1e-6)
