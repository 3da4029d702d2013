"""What ``--reference`` names: a data URI, or ``models:/NAME@ALIAS``, the raw data the model
version behind that alias was trained on. The second is followed from the registry: the version's
training run → its ``data_path`` param (the preprocess output it trained on) → that output's
manifest → the raw ``source`` and its sha256 ``fingerprint``.

Drift against a model's training data only means something if that data is still what the model
saw: a source overwritten in place since (one path reused every day) holds other rows, so it is
not compared with, and a warning says why. No version at the alias yet (the first run) is not a
problem: there is nothing to compare with.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from common import dataset, storage
from common.step import StepError
from validator.checks import Anomaly

log = logging.getLogger(__name__)

MODEL_REFERENCE = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[A-Za-z0-9_-]+)$")
NO_REFERENCE = "none"  # --reference none: no drift comparison (a DAG param can say so)


@dataclass(frozen=True)
class ResolvedReference:
    """The data to compare with (None: no comparison this run), what it is, and a warning when
    the reference named could not be used."""

    uri: str | None
    note: str | None = None
    anomaly: Anomaly | None = None


def resolve_reference(reference: str | None) -> ResolvedReference:
    """``--reference`` as data to read. Registry and manifest problems that make the reference
    unusable are warnings; a registry that cannot be reached is a StepError (a retry may help)."""
    if not reference or reference == NO_REFERENCE:
        return ResolvedReference(None)
    match = MODEL_REFERENCE.match(reference)
    if match is None:
        if reference.startswith("models:/"):
            raise StepError(f"--reference {reference!r}: write a model as models:/NAME@ALIAS")
        return ResolvedReference(reference)
    return _training_data(reference, match["name"], match["alias"])


def _training_data(reference: str, name: str, alias: str) -> ResolvedReference:
    from common.tracking import alias_version, configure_mlflow, reaching_mlflow

    with reaching_mlflow():
        version = alias_version(name, alias)
        if version is None:
            note = f"no version of {name!r} has alias {alias!r} yet; drift not measured"
            log.info("--reference %s: %s", reference, note)
            return ResolvedReference(None, note)
        run = configure_mlflow().MlflowClient().get_run(version.run_id)
    model = f"{reference} (version {version.version}, run {version.run_id})"
    data_path = run.data.params.get("data_path")
    if not data_path:
        return _unusable(reference, f"{model} records no data_path param")
    try:
        manifest = dataset.read_manifest(data_path)
        source, recorded = manifest["source"], manifest["fingerprint"]
        current = storage.fingerprint(source) if storage.exists(source) else None
    except (StepError, KeyError) as exc:
        return _unusable(reference, f"the training data of {model} cannot be read: {exc}")
    if current != recorded:
        now = "is gone" if current is None else f"now holds other data (sha256 {current[:12]}…)"
        return _unusable(
            reference,
            f"{model} was trained on {source} (sha256 {recorded[:12]}…), which {now}; keep "
            "dated inputs to compare with a model's training data",
        )
    return ResolvedReference(source, f"training data of {model}")


def _unusable(reference: str, why: str) -> ResolvedReference:
    text = f"--reference {reference}: {why}; drift not measured"
    anomaly = Anomaly(None, "reference_unusable", "warning", reference, None, text)
    return ResolvedReference(None, text, anomaly)
