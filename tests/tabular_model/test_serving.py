"""The served model without MLflow: artifacts in, raw rows to labels and probabilities out."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from common.tracking import run_model_uri
from demo.sample_data import TARGET
from tabular_model import serving
from tabular_model.network import NetworkConfig, TabularMLP
from tabular_model.packaging import input_schema, write_artifacts
from tabular_model.transform import CategoricalColumn, NumericColumn, TableTransform
from tests.trainer.workspace import load_model, log_untrained_model, stored_model_file


def make_model(tmp_path: Path, classes: tuple) -> serving.TabularClassifier:
    transform = TableTransform(
        target="label",
        classes=classes,
        numeric=(NumericColumn("x", 1.0, 2.0, True), NumericColumn("n", 0.0, 1.0, False)),
        categorical=(CategoricalColumn("colour", ("red", "green", "blue")),),
    )
    torch.manual_seed(0)
    features = len(transform.numeric_feature_names)
    net = TabularMLP(NetworkConfig(features, (4,), len(classes), width=8, depth=1, dropout=0.0))
    artifacts = write_artifacts(net, transform, tmp_path)
    model = serving.TabularClassifier()
    checksums = {serving.CHECKSUMS: serving.artifact_checksums(artifacts)}
    model.load_context(SimpleNamespace(artifacts=artifacts, model_config=checksums))
    return model


def artifacts_in(folder: Path) -> dict[str, str]:
    return {
        serving.WEIGHTS: str(folder / "weights.safetensors"),
        serving.NETWORK: str(folder / "network.json"),
        serving.TRANSFORM: str(folder / "transform.json"),
    }


ROWS = pd.DataFrame({"x": [0.5, None, 3.0], "n": [1, 2, 3], "colour": ["red", None, "blue"]})


@pytest.mark.parametrize("classes", [("no", "yes"), (0, 1, 2), ("a", "b", "c", "d")])
def test_predict_returns_original_labels_and_a_probability_per_class(
    tmp_path: Path, classes: tuple
) -> None:
    out = make_model(tmp_path, classes).predict(None, ROWS)
    assert list(out.columns) == ["prediction", *(f"proba_{c}" for c in classes)]
    proba = out.iloc[:, 1:].to_numpy("float64")
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert out["prediction"].tolist() == [classes[i] for i in proba.argmax(1)]


def test_unknown_category_is_encoded_like_a_missing_one(tmp_path: Path) -> None:
    model = make_model(tmp_path, ("no", "yes"))
    rows = pd.DataFrame({"x": [1.0, 1.0], "n": [0, 0], "colour": [None, "purple"]})
    out = model.predict(None, rows)
    np.testing.assert_array_equal(out.iloc[0, 1:].to_numpy(), out.iloc[1, 1:].to_numpy())


def test_missing_input_column_is_an_error(tmp_path: Path) -> None:
    model = make_model(tmp_path, ("no", "yes"))
    with pytest.raises(ValueError, match="colour"):
        model.predict(None, ROWS.drop(columns=["colour"]))


def test_unknown_category_raises_no_deprecation_warning(tmp_path: Path) -> None:
    # pd.Categorical(values, categories=vocabulary) with values outside the vocabulary is
    # deprecated in pandas 3 (Pandas4Warning) and will raise in pandas 4.
    model = make_model(tmp_path, ("no", "yes"))
    rows = pd.DataFrame({"x": [1.0], "n": [0], "colour": ["purple"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        model.predict(None, rows)


def test_input_schema_takes_any_numeric_type_and_strings_all_optional(tmp_path: Path) -> None:
    model = make_model(tmp_path, ("no", "yes"))
    schema = input_schema(model.transform)
    specs = {s.name: s for s in schema.inputs}
    assert list(specs) == ["x", "n", "colour"]
    assert not any(s.required for s in specs.values())
    from mlflow.types import DataType
    from mlflow.types.schema import AnyType

    assert specs["colour"].type == DataType.string
    assert isinstance(specs["x"].type, AnyType)
    assert isinstance(specs["n"].type, AnyType)


@pytest.mark.parametrize("name", ["weights", "network", "transform"])
def test_a_changed_artifact_is_refused_before_it_is_read(tmp_path: Path, name: str) -> None:
    make_model(tmp_path, ("no", "yes"))
    artifacts = artifacts_in(tmp_path)
    recorded = {serving.CHECKSUMS: serving.artifact_checksums(artifacts)}
    path = Path(artifacts[name])
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(serving.ArtifactIntegrityError, match=f"'{name}'.*{path.name}.*sha256"):
        serving.TabularClassifier().load_context(
            SimpleNamespace(artifacts=artifacts, model_config=recorded)
        )


def test_a_model_without_recorded_checksums_is_refused(tmp_path: Path) -> None:
    make_model(tmp_path, ("no", "yes"))
    with pytest.raises(serving.ArtifactIntegrityError, match="no recorded sha256"):
        serving.TabularClassifier().load_context(
            SimpleNamespace(artifacts=artifacts_in(tmp_path), model_config={})
        )


@pytest.fixture
def logged(preprocessed: Path) -> str:
    """An untrained model for the sample data, logged to this test's embedded store."""
    return log_untrained_model(preprocessed, "serving")


def test_logged_model_records_checksums_and_loads_without_pickle(
    logged: str, preprocessed: Path
) -> None:
    import mlflow

    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    model_uri = run_model_uri(logged)
    model = load_model(model_uri)
    recorded = mlflow.models.get_model_info(model_uri).flavors["python_function"]["config"]
    for name, file in [("weights", "weights.safetensors"), ("transform", "transform.json")]:
        assert recorded[serving.CHECKSUMS][name] == serving.sha256_of(
            stored_model_file(logged, file)
        )
    rows = pd.read_parquet(preprocessed / "raw" / "sample.parquet").drop(columns=[TARGET])
    assert len(model.predict(rows)) == len(rows)


def test_a_tampered_logged_model_does_not_load(logged: str) -> None:
    weights = stored_model_file(logged, "weights.safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(Exception, match=r"weights.*sha256.*changed"):
        load_model(run_model_uri(logged))


LOAD_WITHOUT_THE_PROJECT = """
import sys
sys.path.append(sys.argv[1])  # the installed libraries, without the project's own packages
import importlib.util
names = ("tabular_model", "common", "trainer", "contract")
found = [n for n in names if importlib.util.find_spec(n)]
assert not found, f"project packages importable: {found}"
import mlflow
import pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[2])
print(len(model.predict(pd.read_parquet(sys.argv[3]))))
"""


def test_the_logged_model_loads_where_the_project_is_not_installed(
    logged: str, preprocessed: Path, tmp_path: Path
) -> None:
    """Everything the model runs travels with it (its ``code`` entry) and its requirements are
    pinned: an interpreter with the libraries but none of the project's packages (``-S``: the
    project's editable install, a ``.pth`` file, is not read) loads it and predicts."""
    import sysconfig

    import mlflow

    model_uri = run_model_uri(logged)
    local = mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "model"))
    requirements = (Path(local) / "requirements.txt").read_text().split()
    assert all("==" in line for line in requirements), requirements
    rows = pd.read_parquet(preprocessed / "raw" / "sample.parquet").drop(columns=[TARGET])
    rows.to_parquet(tmp_path / "rows.parquet")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-S", "-c", LOAD_WITHOUT_THE_PROJECT, sysconfig.get_paths()["purelib"],
         local, str(tmp_path / "rows.parquet")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == str(len(rows))
