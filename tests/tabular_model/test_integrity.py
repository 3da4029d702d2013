"""The verified loader: every file of a logged model is checked against the sha256 recorded in
its run's params (and a registry version's tags) before MLflow runs any of its code."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from common.tracking import configure_mlflow, ensure_experiment, run_model_uri
from tabular_model import integrity
from tabular_model.integrity import ModelIntegrityError, load_verified_model, verified_local_copy
from tests.tabular_model.tampering import (
    CODE_COPY_MODULE,
    SERVED_MODEL,
    append_marker_code,
    replace_weights_and_their_hash,
    stored_model_folder,
)
from tests.trainer.workspace import log_untrained_model

pytestmark = pytest.mark.integration


@pytest.fixture
def logged(preprocessed: Path) -> str:
    """The run id of a freshly logged model in this test's embedded store."""
    return log_untrained_model(preprocessed)


def raw_rows(preprocessed: Path) -> pd.DataFrame:
    return pd.read_parquet(preprocessed / "raw" / "sample.parquet").head(5)


def register(run_id: str, name: str) -> str:
    """Register the run's model as version 1 of ``name`` with its integrity tags and point the
    ``champion`` alias at it."""
    mlflow = configure_mlflow()
    model_uri = run_model_uri(run_id)
    tags = integrity.version_tags(model_uri.removeprefix("models:/"), run_id)
    version = mlflow.register_model(model_uri, name, tags=tags).version
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    return str(version)


def test_every_uri_form_loads_the_verified_copy(logged: str, preprocessed: Path) -> None:
    version = register(logged, "scored")
    model_uri = run_model_uri(logged)
    uris = [
        model_uri,
        f"runs:/{logged}/model",
        f"models:/scored/{version}",
        "models:/scored@champion",
    ]
    expected = None
    for uri in uris:
        out = load_verified_model(uri).predict(raw_rows(preprocessed))
        if expected is not None:
            pd.testing.assert_frame_equal(out, expected)
        expected = out


def test_the_record_covers_every_file_of_the_model(logged: str, tmp_path: Path) -> None:
    local = verified_local_copy(run_model_uri(logged), tmp_path / "copy")
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    model_id = run_model_uri(logged).removeprefix("models:/")
    params = configure_mlflow().MlflowClient().get_run(logged).data.params
    manifest, digest = integrity.recorded_manifest(params, model_id)
    assert set(manifest) == files
    assert {"MLmodel", "requirements.txt", SERVED_MODEL, CODE_COPY_MODULE} <= files
    assert {"python_env.yaml", "conda.yaml", "artifacts/weights.safetensors"} <= files
    assert digest == integrity.manifest_digest(manifest)


@pytest.mark.parametrize("relative", [SERVED_MODEL, CODE_COPY_MODULE])
def test_an_appended_line_is_refused_before_it_runs(
    logged: str, relative: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    append_marker_code(stored_model_folder(logged) / relative, marker)
    with pytest.raises(ModelIntegrityError, match=re.escape(f"{relative} has sha256")):
        load_verified_model(run_model_uri(logged))
    assert not marker.exists()


def test_an_appended_line_runs_when_mlflow_loads_the_model_unchecked(
    logged: str, tmp_path: Path
) -> None:
    """What the check prevents: MLflow alone executes the appended line while it loads."""
    marker = tmp_path / "ran"
    append_marker_code(stored_model_folder(logged) / SERVED_MODEL, marker)
    script = textwrap.dedent(
        """
        import sys
        import mlflow
        mlflow.set_tracking_uri(sys.argv[1])
        try:
            mlflow.pyfunc.load_model(sys.argv[2])
        except Exception:
            pass
        """
    )
    uri = configure_mlflow().get_tracking_uri()
    subprocess.run([sys.executable, "-c", script, uri, run_model_uri(logged)], check=True)
    assert marker.exists()


def test_weights_changed_with_their_hash_in_mlmodel_are_refused(logged: str) -> None:
    replace_weights_and_their_hash(stored_model_folder(logged))
    with pytest.raises(ModelIntegrityError, match="MLmodel has sha256"):
        load_verified_model(run_model_uri(logged))


def test_an_extra_file_is_refused(logged: str) -> None:
    (stored_model_folder(logged) / "code" / "tabular_model" / "sitecustomize.py").write_text("")
    with pytest.raises(ModelIntegrityError, match=r"sitecustomize.py is extra"):
        load_verified_model(f"runs:/{logged}/model")


def test_a_missing_file_is_refused(logged: str) -> None:
    (stored_model_folder(logged) / "artifacts" / "network.json").unlink()
    with pytest.raises(ModelIntegrityError, match=r"artifacts/network.json is missing"):
        load_verified_model(run_model_uri(logged))


def test_a_model_logged_without_a_record_is_refused(tmp_path: Path) -> None:
    code = tmp_path / "echo_model.py"
    code.write_text(
        textwrap.dedent(
            """
            from mlflow.models import set_model
            from mlflow.pyfunc import PythonModel

            class Echo(PythonModel):
                def predict(self, context, model_input):
                    return model_input

            set_model(Echo())
            """
        )
    )
    mlflow = configure_mlflow()
    with mlflow.start_run(experiment_id=ensure_experiment("unrecorded")):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code))
    with pytest.raises(ModelIntegrityError, match=r"no integrity record.*refused"):
        load_verified_model(info.model_uri)
    mlflow.register_model(info.model_uri, "unrecorded")
    with pytest.raises(ModelIntegrityError, match="no integrity record"):
        load_verified_model("models:/unrecorded/1")


def test_a_version_without_or_with_other_integrity_tags_is_refused(logged: str) -> None:
    mlflow = configure_mlflow()
    model_uri = run_model_uri(logged)
    mlflow.register_model(model_uri, "untagged")
    with pytest.raises(ModelIntegrityError, match="no integrity record on the registry version"):
        load_verified_model("models:/untagged/1")
    client = mlflow.MlflowClient()
    client.set_model_version_tag("untagged", "1", integrity.VERSION_DIGEST_TAG, "0" * 64)
    client.set_model_version_tag(
        "untagged", "1", integrity.VERSION_MODEL_TAG, model_uri.removeprefix("models:/")
    )
    with pytest.raises(ModelIntegrityError, match="tags disagree"):
        load_verified_model("models:/untagged/1")


def test_the_record_cannot_be_rewritten_but_recording_again_is_harmless(logged: str) -> None:
    """A resumed training that records the same model again changes nothing; recording other
    files under the same model id is refused by MLflow (run params never change)."""
    model_id = run_model_uri(logged).removeprefix("models:/")
    digest = integrity.record_logged_model(model_id, logged)
    assert integrity.version_tags(model_id, logged)[integrity.VERSION_DIGEST_TAG] == digest
    append_marker_code(stored_model_folder(logged) / SERVED_MODEL, Path("/nonexistent/x"))
    with pytest.raises(Exception, match=r"(?i)param"):
        integrity.record_logged_model(model_id, logged)
    with pytest.raises(ModelIntegrityError, match=re.escape(SERVED_MODEL)):
        load_verified_model(run_model_uri(logged))


@pytest.mark.parametrize(
    "uri", ["models:/", "models:/name", "models:/name/latest", "file:///tmp/model", "runs:/abc"]
)
def test_a_uri_of_another_form_is_a_clear_error(uri: str, tmp_path: Path) -> None:
    configure_mlflow()
    with pytest.raises(ValueError, match="expected"):
        verified_local_copy(uri, tmp_path / "copy")


def test_the_target_folder_must_be_empty(logged: str, tmp_path: Path) -> None:
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "left-over").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        verified_local_copy(run_model_uri(logged), tmp_path / "copy")


def test_the_metadata_mlflow_writes_into_a_local_store_is_no_change(
    logged: str, tmp_path: Path
) -> None:
    """Loading a local store's model through a models:/ URI makes MLflow write
    registered_model_meta into the stored folder; it is not part of the model, and the verified
    copy leaves it out."""
    model_uri = run_model_uri(logged)
    configure_mlflow().pyfunc.load_model(model_uri)
    assert (stored_model_folder(logged) / integrity.CLIENT_METADATA).is_file()
    local = verified_local_copy(model_uri, tmp_path / "copy")
    assert not (local / integrity.CLIENT_METADATA).exists()
