"""What the integrity tests share: the stored files of a logged model (in the embedded store's
artifact folder) and ways a writer of that folder changes them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from common.tracking import configure_mlflow, run_model_uri

# The model files MLflow executes when it loads a model: its entry and the package copy.
SERVED_MODEL = "served_model.py"
CODE_COPY_MODULE = "code/tabular_model/serving.py"


def stored_model_folder(run_id: str) -> Path:
    """The folder that holds the files of the model run ``run_id`` logged."""
    model_id = run_model_uri(run_id).removeprefix("models:/")
    location = configure_mlflow().get_logged_model(model_id).artifact_location
    folder = Path(location.removeprefix("file://"))
    assert (folder / "MLmodel").is_file(), folder
    return folder


def append_marker_code(path: Path, marker: Path) -> None:
    """Append a line to the Python file ``path`` that, when it runs, creates ``marker``."""
    with path.open("a") as handle:
        handle.write(f"\nopen({str(marker)!r}, 'w').write('the appended line ran')\n")


def replace_weights_and_their_hash(folder: Path) -> None:
    """Change the weights and write their new sha256 into MLmodel's model_config, as a writer
    of the artifact store can."""
    weights = folder / "artifacts" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    mlmodel = folder / "MLmodel"
    spec = yaml.safe_load(mlmodel.read_text())
    config = spec["flavors"]["python_function"]["config"]
    config["sha256"]["weights"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    mlmodel.write_text(yaml.safe_dump(spec))
