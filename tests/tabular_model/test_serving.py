"""The served model without MLflow's loader: artifacts in, raw rows to labels and probabilities
out, rows it cannot score refused naming the column."""

from __future__ import annotations

import logging
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
from mlflow.exceptions import MlflowException

from common.tracking import run_model_uri
from demo.sample_data import TARGET
from tabular_model import serving
from tabular_model.network import NetworkConfig, TabularMLP
from tabular_model.packaging import input_schema, write_artifacts
from tabular_model.transform import CategoricalColumn, NumericColumn, TableTransform
from tests.trainer.workspace import load_model, log_untrained_model, stored_model_file


def model_for(tmp_path: Path, transform: TableTransform) -> serving.TabularClassifier:
    torch.manual_seed(0)
    features = len(transform.numeric_feature_names)
    cardinalities = tuple(c.cardinality for c in transform.categorical)
    config = NetworkConfig(
        features, cardinalities, len(transform.classes), width=8, depth=1, dropout=0.0
    )
    artifacts = write_artifacts(TabularMLP(config), transform, tmp_path)
    model = serving.TabularClassifier()
    checksums = {serving.CHECKSUMS: serving.artifact_checksums(artifacts)}
    model.load_context(SimpleNamespace(artifacts=artifacts, model_config=checksums))
    return model


def make_model(tmp_path: Path, classes: tuple) -> serving.TabularClassifier:
    transform = TableTransform(
        target="label",
        classes=classes,
        numeric=(NumericColumn("x", 1.0, 2.0, True), NumericColumn("n", 0.0, 1.0, False)),
        categorical=(CategoricalColumn("colour", ("red", "green", "blue")),),
    )
    return model_for(tmp_path, transform)


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


def test_missing_input_column_is_refused_naming_it(tmp_path: Path) -> None:
    model = make_model(tmp_path, ("no", "yes"))
    with pytest.raises(MlflowException, match=r"missing column\(s\) \['colour'\]") as exc:
        model.predict(None, ROWS.drop(columns=["colour"]))
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("x", "abc", "are not numbers"),
        ("x", "", "are not numbers"),
        ("x", "1_000", "are not numbers"),
        ("x", True, "are not numbers"),
        ("n", [1, 2], "are not numbers"),
        ("n", {"a": 1}, "are not numbers"),
        ("n", b"1", "are not numbers"),
        ("x", float("inf"), "are not finite"),
        ("x", float("-inf"), "are not finite"),
        ("x", "inf", "are not finite"),
        ("x", "1e400", "are not finite"),
        ("n", 10**400, "are not finite .*beyond the float64 range"),
        ("colour", ["red"], "are not single values"),
        ("colour", {"red": 1}, "are not single values"),
    ],
)
def test_a_value_the_model_cannot_score_is_refused_naming_the_column(
    tmp_path: Path, column: str, value: object, problem: str
) -> None:
    model = make_model(tmp_path, ("no", "yes"))
    rows = ROWS.astype(object)
    rows.at[1, column] = value
    with pytest.raises(
        MlflowException, match=rf"column '{column}': 1 of 3 value\(s\) {problem}.*\(first: row 1,"
    ) as exc:
        model.predict(None, rows)
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    "values",
    [
        np.array([True, False, True]),
        pd.array([True, None, False], dtype="boolean"),
        np.array([1 + 1j, 2, 3]),
        pd.to_datetime(["2026-01-01"] * 3),
    ],
)
def test_a_numeric_column_of_booleans_complex_numbers_or_dates_is_refused(
    tmp_path: Path, values: object
) -> None:
    model = make_model(tmp_path, ("no", "yes"))
    with pytest.raises(MlflowException, match=r"column 'n': \d of 3 value\(s\) are not numbers"):
        model.predict(None, ROWS.assign(n=values))


def test_numbers_of_any_width_numeric_text_and_missing_values_score_alike(tmp_path: Path) -> None:
    model = make_model(tmp_path, ("no", "yes"))
    expected = model.predict(None, ROWS)
    for n in (
        np.array([1, 2, 3], dtype=np.uint8),
        np.array([1, 2, 3], dtype=np.int32),
        np.array([1, 2, 3], dtype=np.float32),
        pd.array([1, 2, 3], dtype="Int64"),
        np.array(["1", " 2", "3.0"], dtype=object),
        np.array([1, 2.0, "3"], dtype=object),
    ):
        pd.testing.assert_frame_equal(model.predict(None, ROWS.assign(n=n)), expected)
    text_missing = ROWS.assign(x=np.array(["0.5", "nan", None], dtype=object))
    pd.testing.assert_frame_equal(model.predict(None, text_missing).iloc[:2], expected.iloc[:2])


def test_a_huge_finite_number_gives_finite_probabilities(tmp_path: Path) -> None:
    """The transform holds a scaled feature at its limit, so 1e308 does not overflow to NaN."""
    model = make_model(tmp_path, ("no", "yes"))
    out = model.predict(None, ROWS.assign(x=[1e308, -1e308, np.finfo(np.float64).max]))
    assert np.isfinite(out.iloc[:, 1:].to_numpy("float64")).all()


def test_categories_as_dictionary_text_or_whole_floats_score_alike(tmp_path: Path) -> None:
    transform = TableTransform(
        target="label",
        classes=("no", "yes"),
        numeric=(NumericColumn("x", 0.0, 1.0, False),),
        categorical=(CategoricalColumn("code", ("3", "7", "12")),),
    )
    model = model_for(tmp_path, transform)
    text = pd.DataFrame({"x": [1.0, 2.0, 3.0], "code": ["3", "12", None]})
    expected = model.predict(None, text)
    for code in (
        pd.Categorical(["3", "12", None]),
        pd.array([3, 12, None], dtype="Int64"),
        [3.0, 12.0, None],  # JSON integers in a column with a missing value arrive as floats
        np.array([3, "12", None], dtype=object),
    ):
        pd.testing.assert_frame_equal(model.predict(None, text.assign(code=code)), expected)


def test_extra_columns_are_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_model(tmp_path, ("no", "yes"))
    expected = model.predict(None, ROWS)
    with caplog.at_level(logging.WARNING, logger=serving.__name__):
        out = model.predict(None, ROWS.assign(extra=1, other=[[1], [2], [3]]))
    pd.testing.assert_frame_equal(out, expected)
    warnings_ = [r.getMessage() for r in caplog.records if r.name == serving.__name__]
    assert warnings_ == ["ignoring 2 input column(s) the model does not use: ['extra', 'other']"]


@pytest.mark.parametrize("classes", [("no", "yes"), (0, 1, 2)])
def test_no_rows_give_no_predictions_with_the_same_columns(tmp_path: Path, classes: tuple) -> None:
    model = make_model(tmp_path, classes)
    full = model.predict(None, ROWS)
    out = model.predict(None, ROWS.iloc[:0])
    assert len(out) == 0
    assert list(out.columns) == list(full.columns)
    assert out.dtypes.to_dict() == full.dtypes.to_dict()


def test_a_network_producing_nan_fails_instead_of_returning_it(tmp_path: Path) -> None:
    model = make_model(tmp_path, ("no", "yes"))
    with torch.no_grad():
        next(model.net.parameters()).fill_(float("nan"))
    with pytest.raises(serving.NonFiniteOutputError, match="3 of 3 row"):
        model.predict(None, ROWS)


def test_unknown_category_raises_no_deprecation_warning(tmp_path: Path) -> None:
    # pd.Categorical(values, categories=vocabulary) with values outside the vocabulary is
    # deprecated in pandas 3 (Pandas4Warning) and will raise in pandas 4.
    model = make_model(tmp_path, ("no", "yes"))
    rows = pd.DataFrame({"x": [1.0], "n": [0], "colour": ["purple"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        model.predict(None, rows)


def test_input_schema_requires_every_column_and_leaves_types_to_the_model(tmp_path: Path) -> None:
    """MLflow's column types cannot take int64 and floats alike (``double`` refuses int64,
    ``long`` refuses floats) nor a ``category`` column as text, so every column is ``any``
    and the model checks the values (see the tests above)."""
    from mlflow.types.schema import AnyType

    model = make_model(tmp_path, ("no", "yes"))
    specs = {s.name: s for s in input_schema(model.transform).inputs}
    assert list(specs) == ["x", "n", "colour"]
    assert all(s.required for s in specs.values())
    assert all(isinstance(s.type, AnyType) for s in specs.values())


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
