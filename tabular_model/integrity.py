"""Integrity of a logged model against a writer of the artifact store.

MLflow executes a model's code when it loads it (``served_model.py`` and the package copy in
``code``), and the sha256 of the artifacts in ``MLmodel`` sit beside them in the same store, so
whoever can write there can change both. At logging time the sha256 of EVERY file of the model
goes into a manifest ``{relative path: sha256}`` with one digest over it; the record is kept in
the tracking backend, where the artifact store's writers cannot change it:

* the params of the run that logged the model, keyed by the logged model's id
  (``model_integrity.<model id>.sha256`` and ``.manifest[.N]``). MLflow refuses to change a
  run param once logged, and a resumed run that logs another model writes other keys.
* the tags of a registry version (``model_integrity.sha256``, ``model_integrity.model_id``),
  set when it is registered: a registry URI must agree with both.

``verified_local_copy`` downloads the model once into a local folder, hashes every file there
and compares with the record before anything of the model is imported;
``load_verified_model`` then loads that very folder, so what runs is what was checked."""

from __future__ import annotations

import atexit
import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

RECORD_PREFIX = "model_integrity"
VERSION_DIGEST_TAG = f"{RECORD_PREFIX}.sha256"
VERSION_MODEL_TAG = f"{RECORD_PREFIX}.model_id"
PARAM_CHUNK = 6000  # MLflow's longest run param value
_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")


# Written by MLflow's client into a model folder it loads through a ``models:/`` URI, into the
# store itself when that is a local folder: not part of the logged model, so neither recorded
# nor kept in a verified copy.
CLIENT_METADATA = "registered_model_meta"


class ModelIntegrityError(ValueError):
    """The model's files differ from its integrity record, or it has no record."""


@dataclass(frozen=True)
class ModelRef:
    """What a model URI names: the logged model, the run that logged it, the registry version
    (None for a logged model or a run's model) and the URI its files are downloaded from."""

    model_id: str
    run_id: str
    download_uri: str  # where the files are, never a models:/ URI
    version: Any = None


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def file_manifest(folder: Path) -> dict[str, str]:
    """{path relative to ``folder`` (POSIX): sha256} of every file under it. A link or any
    other entry that is not a plain file or folder is refused: it could point outside."""
    manifest = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ModelIntegrityError(f"{relative} is not a plain file")
        if path.is_file():
            manifest[relative] = sha256_of(path)
    return manifest


def downloaded_model(artifact_uri: str, folder: Path) -> Path:
    """The model files at ``artifact_uri`` copied into ``folder``, less ``CLIENT_METADATA``."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri, dst_path=str(folder)))
    (local / CLIENT_METADATA).unlink(missing_ok=True)
    return local


def manifest_digest(manifest: Mapping[str, str]) -> str:
    """One sha256 over the manifest (canonical JSON: sorted keys, no spaces)."""
    canonical = json.dumps(dict(manifest), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_params(model_id: str, manifest: Mapping[str, str]) -> dict[str, str]:
    """The run params that record ``manifest`` for logged model ``model_id``: its digest, and
    the manifest as canonical JSON cut into pieces that fit a param value."""
    text = json.dumps(dict(manifest), sort_keys=True, separators=(",", ":"))
    key = f"{RECORD_PREFIX}.{model_id}"
    chunks = [text[i : i + PARAM_CHUNK] for i in range(0, len(text), PARAM_CHUNK)]
    params = {f"{key}.sha256": manifest_digest(manifest), f"{key}.chunks": str(len(chunks))}
    params |= {f"{key}.manifest.{i}": chunk for i, chunk in enumerate(chunks)}
    return params


def recorded_manifest(params: Mapping[str, str], model_id: str) -> tuple[dict[str, str], str]:
    """The manifest and digest recorded in run ``params`` for ``model_id``; ModelIntegrityError
    when there is none or it is inconsistent."""
    key = f"{RECORD_PREFIX}.{model_id}"
    if f"{key}.sha256" not in params:
        raise ModelIntegrityError(
            f"no integrity record for logged model {model_id} on its run (param {key}.sha256): "
            "a model logged without one is refused; log the model again"
        )
    try:
        chunks = int(params[f"{key}.chunks"])
        manifest = json.loads("".join(params[f"{key}.manifest.{i}"] for i in range(chunks)))
    except (KeyError, ValueError) as exc:
        raise ModelIntegrityError(f"the integrity record {key} is incomplete: {exc}") from exc
    digest = params[f"{key}.sha256"]
    if not isinstance(manifest, dict) or manifest_digest(manifest) != digest:
        raise ModelIntegrityError(f"the integrity record {key} does not match its digest")
    return manifest, digest


def compare(expected: Mapping[str, str], actual: Mapping[str, str], where: str) -> None:
    """ModelIntegrityError naming the first file that differs, is missing or is extra."""
    for path in sorted({*expected, *actual}):
        if path not in actual:
            raise ModelIntegrityError(f"{where}: {path} is missing (it was logged)")
        if path not in expected:
            raise ModelIntegrityError(f"{where}: {path} is extra (it was not logged)")
        if expected[path] != actual[path]:
            raise ModelIntegrityError(
                f"{where}: {path} has sha256 {actual[path]}, but {expected[path]} was logged"
            )


def record_logged_model(model_id: str, run_id: str) -> str:
    """Hash every file of logged model ``model_id`` as the artifact store holds it and record
    the manifest in the params of run ``run_id``; returns the digest.

    The files are downloaded back rather than hashed from the folder MLflow uploaded: that
    folder is MLflow's own temporary copy (MLmodel gains the model id and more while it is
    logged), and what the store holds is what a loader will get. Logging it again with the same
    files is a no-op (same param values); other files are refused by MLflow."""
    import mlflow
    from mlflow.entities import Param

    client = mlflow.MlflowClient()
    location = _logged_model_ref(client, model_id).download_uri
    with tempfile.TemporaryDirectory() as tmp:
        manifest = file_manifest(downloaded_model(location, Path(tmp)))
    params = record_params(model_id, manifest)
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    return params[f"{RECORD_PREFIX}.{model_id}.sha256"]


def has_record(model_id: str, run_id: str) -> bool:
    """Whether run ``run_id`` holds an integrity record for logged model ``model_id``."""
    import mlflow

    params = mlflow.MlflowClient().get_run(run_id).data.params
    return f"{RECORD_PREFIX}.{model_id}.sha256" in params


def version_tags(model_id: str, run_id: str) -> dict[str, str]:
    """The registry version tags for logged model ``model_id``, copied from its run's record
    (never computed from the store's files now)."""
    import mlflow

    params = mlflow.MlflowClient().get_run(run_id).data.params
    _, digest = recorded_manifest(params, model_id)
    return {VERSION_DIGEST_TAG: digest, VERSION_MODEL_TAG: model_id}


def _logged_model_ref(client: Any, model_id: str, version: Any = None) -> ModelRef:
    """The files of a logged model are downloaded from its artifact location (for a registry
    version, from the version's download URI), never through a ``models:/`` URI: MLflow adds a
    ``registered_model_meta`` file of its own to a model downloaded that way."""
    try:
        logged = client.get_logged_model(model_id)
    except Exception as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            raise ModelIntegrityError(f"no logged model {model_id}") from exc
        raise
    if not logged.source_run_id:
        raise ModelIntegrityError(
            f"logged model {model_id} has no source run, so no integrity record"
        )
    download_uri = logged.artifact_location
    if version is not None:
        registry_copy = client.get_model_version_download_uri(version.name, version.version)
        if not str(registry_copy).startswith("models:/"):
            download_uri = registry_copy
    return ModelRef(model_id, logged.source_run_id, download_uri, version)


def _version_ref(client: Any, version: Any) -> ModelRef:
    uri = f"models:/{version.name}/{version.version}"
    model_id = version.model_id or str(version.source).removeprefix("models:/")
    if not _MODEL_ID.fullmatch(model_id or ""):
        raise ModelIntegrityError(
            f"{uri} was not registered from a logged model, so it has no integrity record"
        )
    return _logged_model_ref(client, model_id, version)


def _run_ref(client: Any, run_id: str, name: str) -> ModelRef:
    import mlflow
    from mlflow.entities import LoggedModelStatus

    experiment_id = client.get_run(run_id).info.experiment_id
    found = mlflow.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
        output_format="list",
    )
    ready = [m for m in found if m.status == LoggedModelStatus.READY]
    if len(ready) != 1:
        raise ModelIntegrityError(
            f"runs:/{run_id}/{name} names {len(ready)} finished logged models, not one"
        )
    return _logged_model_ref(client, ready[0].model_id)


def resolve(model_uri: str) -> ModelRef:
    """The logged model, run and registry version behind ``model_uri``: ``models:/NAME@ALIAS``
    (the alias read once, so a move during the download changes nothing),
    ``models:/NAME/VERSION``, ``models:/m-<id>`` or ``runs:/RUN_ID/PATH``."""
    import mlflow

    client = mlflow.MlflowClient()
    if model_uri.startswith("runs:/"):
        run_id, _, name = model_uri.removeprefix("runs:/").partition("/")
        if not run_id or not name.strip("/"):
            raise ValueError(f"{model_uri}: expected runs:/RUN_ID/MODEL_NAME")
        return _run_ref(client, run_id, name.strip("/"))
    if not model_uri.startswith("models:/"):
        raise ValueError(f"{model_uri}: expected a models:/ or runs:/ URI")
    rest = model_uri.removeprefix("models:/").rstrip("/")
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        return _version_ref(client, client.get_model_version_by_alias(name, alias))
    name, _, version = rest.rpartition("/")
    if name and version.isdigit():
        return _version_ref(client, client.get_model_version(name, version))
    if not name and _MODEL_ID.fullmatch(rest):
        return _logged_model_ref(client, rest)
    raise ValueError(
        f"{model_uri}: expected models:/NAME@ALIAS, models:/NAME/VERSION, models:/m-<id> "
        "or runs:/RUN_ID/MODEL_NAME"
    )


def expected_manifest(ref: ModelRef, model_uri: str) -> dict[str, str]:
    """The manifest recorded for ``ref``; for a registry version its tags must agree."""
    import mlflow

    params = mlflow.MlflowClient().get_run(ref.run_id).data.params
    try:
        manifest, digest = recorded_manifest(params, ref.model_id)
    except ModelIntegrityError as exc:
        raise ModelIntegrityError(f"{model_uri}: {exc}") from None
    if ref.version is not None:
        tags = ref.version.tags or {}
        if VERSION_DIGEST_TAG not in tags:
            raise ModelIntegrityError(
                f"{model_uri}: no integrity record on the registry version (tag "
                f"{VERSION_DIGEST_TAG}); a version registered without one is refused"
            )
        if tags[VERSION_DIGEST_TAG] != digest or tags.get(VERSION_MODEL_TAG) != ref.model_id:
            raise ModelIntegrityError(
                f"{model_uri}: the version's integrity tags disagree with the record of logged "
                f"model {ref.model_id} on run {ref.run_id}"
            )
    return manifest


def verified_local_copy(model_uri: str, folder: Path) -> Path:
    """Download the model ``model_uri`` names into ``folder`` (created if missing; it must be
    empty), check every file against the model's integrity record, and return the local model
    directory. ModelIntegrityError names the file that differs, is missing or is extra, or says
    that there is no record. Nothing of the model is imported here."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty: a verified copy needs an empty folder")
    ref = resolve(model_uri)
    expected = expected_manifest(ref, model_uri)
    local = downloaded_model(ref.download_uri, folder)
    compare(expected, file_manifest(local), model_uri)
    return local


def _kept_folder() -> Path:
    """A temporary folder removed when the process ends, not before: a loaded model keeps
    importing from its ``code`` copy there."""
    path = Path(tempfile.mkdtemp(prefix="verified-model-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def load_verified_model(model_uri: str) -> PyFuncModel:
    """``verified_local_copy`` into a temporary folder, then ``mlflow.pyfunc.load_model`` of
    that local copy."""
    import mlflow

    folder = _kept_folder()
    try:
        local = verified_local_copy(model_uri, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return mlflow.pyfunc.load_model(str(local))
