"""Drift of each column against reference data: the population stability index (PSI) and the
Jensen-Shannon distance between the binned distributions. Numeric columns use quantile bins of
the reference (plus a bin for missing values); categorical columns use the reference's most
frequent categories, one bin for all others and one for missing values. Pure and vectorised:
profiles in, one ``ColumnDrift`` per shared column out. A numeric column described by a sample
(see ``validator.profile``) has its bin counts scaled from the sample to all its values."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from validator.checks import Anomaly, Thresholds, graded
from validator.profile import ColumnProfile, sorted_quantiles

EPSILON = 1e-4  # floor of a bin's share, so that an empty bin gives a finite PSI
MAX_CATEGORY_BINS = 50
MISSING = "(missing)"
OTHER = "(other)"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's binned shares in the reference and the current data, and their distance."""

    column: str
    bins: list[str]
    reference: np.ndarray
    current: np.ndarray
    psi: float
    js: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi": round(self.psi, 6),
            "js_distance": round(self.js, 6),
            "bins": self.bins,
            "reference_shares": [round(float(v), 6) for v in self.reference],
            "current_shares": [round(float(v), 6) for v in self.current],
        }


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    ref = np.clip(reference, EPSILON, None)
    cur = np.clip(current, EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, so between 0 and 1) of two share vectors."""
    return float(jensenshannon(reference, current, base=2))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def numeric_bins(
    reference: ColumnProfile, current: ColumnProfile, bins: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Counts in the reference's quantile bins (ties merged) plus a missing-value bin."""
    assert reference.values is not None and current.values is not None
    edges = np.unique(sorted_quantiles(reference.values, np.linspace(0, 1, bins + 1)))
    inner = edges[1:-1]  # the outer bins are open, so new extremes still land in a bin

    def count(profile: ColumnProfile) -> np.ndarray:
        assert profile.values is not None
        placed = np.bincount(
            np.searchsorted(inner, profile.values, side="right"), minlength=len(inner) + 1
        )
        if profile.sampled:  # the sample's counts scaled to all finite values
            assert profile.numbers is not None
            scale = profile.numbers.count / len(profile.values)
            return np.append(placed * scale, profile.null_count + profile.inf_count)
        return np.append(placed, profile.null_count + profile.inf_count)

    labels = [f"< {inner[0]:.4g}"] if len(inner) else ["all values"]
    labels += [f"[{a:.4g}, {b:.4g})" for a, b in pairwise(inner)]
    labels += [f">= {inner[-1]:.4g}"] if len(inner) else []
    return [*labels, MISSING], count(reference), count(current)


def categorical_bins(
    reference: ColumnProfile, current: ColumnProfile
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Counts of the reference's most frequent categories, all others, and missing values."""
    assert reference.counts is not None and current.counts is not None
    top = reference.counts.index[:MAX_CATEGORY_BINS]

    def count(profile: ColumnProfile) -> np.ndarray:
        assert profile.counts is not None
        known = profile.counts.reindex(top, fill_value=0).to_numpy("int64")
        other = profile.present - int(known.sum())  # untracked values too
        return np.append(known, [other, profile.null_count])

    return [*map(str, top), OTHER, MISSING], count(reference), count(current)


def _has_values(profile: ColumnProfile) -> bool:
    held = profile.values if profile.values is not None else profile.counts
    return held is not None and len(held) > 0


def column_drift(reference: ColumnProfile, current: ColumnProfile, bins: int) -> ColumnDrift | None:
    """The drift of one column; None when its type changed, the reference has no values or the
    current data no rows."""
    if reference.type != current.type or not _has_values(reference) or not current.rows:
        return None
    if reference.values is not None:
        labels, ref_counts, cur_counts = numeric_bins(reference, current, bins)
    else:
        labels, ref_counts, cur_counts = categorical_bins(reference, current)
    # Bins empty on both sides carry no information; dropping them keeps the plots readable.
    used = (ref_counts + cur_counts) > 0
    ref, cur = _shares(ref_counts[used]), _shares(cur_counts[used])
    names = [name for name, keep in zip(labels, used, strict=True) if keep]
    return ColumnDrift(current.name, names, ref, cur, psi(ref, cur), js_distance(ref, cur))


def compare(
    reference: dict[str, ColumnProfile], current: dict[str, ColumnProfile], bins: int
) -> dict[str, ColumnDrift]:
    """Drift of every column the reference and the current data share, by column name."""
    found: dict[str, ColumnDrift] = {}
    for name in sorted(reference.keys() & current.keys()):
        drift = column_drift(reference[name], current[name], bins)
        if drift is not None:
            found[name] = drift
    return found


def drift_anomalies(
    drifts: dict[str, ColumnDrift], thresholds: Thresholds, target: str | None = None
) -> list[Anomaly]:
    """A warning or an error for each column whose PSI passes a threshold. ``target``: a
    regression target, whose drift (measured as any numeric column's, in the reference's
    quantile bins) is reported as ``target_drift``: a shift of what the model predicts."""
    found: list[Anomaly] = []
    for name, drift in drifts.items():
        severity = graded(drift.psi, thresholds.psi_warning, thresholds.psi_error)
        if severity is None:
            continue
        worst = int(np.argmax(np.abs(drift.current - drift.reference)))
        what, check = ("target", "target_drift") if name == target else ("column", "drift")
        text = (
            f"{what} {name!r} drifted from the reference: PSI {drift.psi:.3f} (warning over "
            f"{thresholds.psi_warning:g}, error over {thresholds.psi_error:g}); bin "
            f"{drift.bins[worst]!r} holds {drift.current[worst]:.1%} of rows, was "
            f"{drift.reference[worst]:.1%}"
        )
        expected = f"PSI <= {thresholds.psi_warning:g}"
        found.append(Anomaly(name, check, severity, expected, round(drift.psi, 4), text))
    return found
