"""The validation report: ``anomalies.json`` (every anomaly and per-column statistics, for
machines) and ``report.html`` (a summary, the anomalies, drift and per-column plots, for people).
Pure: builds the JSON document and the HTML text; the CLI writes them."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

from jinja2 import Environment, StrictUndefined

from tabular_model.transform import Task
from validator.checks import Anomaly, Thresholds, graded
from validator.drift import ColumnDrift
from validator.plots import column_plot
from validator.profile import ColumnProfile
from validator.schema import DataSchema
from validator.template import REPORT_TEMPLATE

REPORT_VERSION = 1
SchemaOrigin = Literal["given", "store", "reference", "data"]
SCHEMA_NOTES: dict[str, str] = {
    "given": "given with --schema",
    "store": "from the schema store",
    "reference": "inferred from the reference data",
    "data": "inferred from this data",
}
SHOWN_CHARS = 160  # expected/observed values longer than this are cut in the HTML table
TARGET_SUMMARY = ("min", "p01", "p25", "p50", "mean", "p75", "p99", "max", "std")


@dataclass(frozen=True)
class ValidationReport:
    """Everything one validation run found."""

    source: str
    date: str
    target: str
    fingerprint: str
    schema_uri: str
    schema_origin: SchemaOrigin
    schema_stored: bool
    reference: str | None  # the data drift was measured against (None: not measured)
    reference_note: str | None  # what the reference is, or why there is none
    keys: tuple[str, ...]
    row_count: int
    anomalies: list[Anomaly]
    profiles: dict[str, ColumnProfile]
    drift: dict[str, ColumnDrift]
    thresholds: Thresholds
    task: Task = "classification"  # the target's, as resolved from --task

    @property
    def target_summary(self) -> dict[str, float | None] | None:
        """A regression target's distribution (min, quantiles, mean, max, std); None for a
        classification target (its classes are in its column's statistics) or none at all."""
        profile = self.profiles.get(self.target)
        if self.task != "regression" or profile is None or profile.values is None:
            return None
        stats = profile.summary
        return {name: stats[name] for name in TARGET_SUMMARY}

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(a.severity for a in self.anomalies)
        return {"error": found["error"], "warning": found["warning"]}

    @property
    def status(self) -> Literal["pass", "fail"]:
        return "fail" if self.counts["error"] else "pass"

    def drifted(self) -> list[str]:
        """Columns whose PSI passes the warning threshold, most drifted first."""
        over = [d for d in self.drift.values() if d.psi > self.thresholds.psi_warning]
        return [d.column for d in sorted(over, key=lambda d: (-d.psi, d.column))]

    def to_json(self) -> dict[str, Any]:
        """The ``anomalies.json`` document (JSON-safe: no NaN or inf)."""
        columns = {name: p.stats() for name, p in self.profiles.items()}
        for name, drift in self.drift.items():
            columns[name]["drift"] = drift.to_dict()
        return {
            "report_version": REPORT_VERSION,
            "status": self.status,
            "source": self.source,
            "date": self.date,
            "target": self.target,
            "task": self.task,
            "target_summary": self.target_summary,
            "fingerprint": self.fingerprint,
            "schema_uri": self.schema_uri,
            "schema_origin": self.schema_origin,
            "schema_stored": self.schema_stored,
            "reference": self.reference,
            "reference_note": self.reference_note,
            "keys": list(self.keys),
            "row_count": self.row_count,
            "column_count": len(self.profiles),
            "counts": self.counts,
            "thresholds": asdict(self.thresholds),
            "anomalies": [a.to_dict() for a in self.anomalies],
            "columns": columns,
        }


def _compact(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _number(value: float | None) -> str:
    """Readable at a glance: 50,980.12 rather than 5.098e+04; tiny or huge values in e-notation."""
    if value is None:
        return "-"
    if 1 <= abs(value) < 1e7:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def _facts(profile: ColumnProfile, drift: ColumnDrift | None) -> list[tuple[str, str]]:
    """The few statistics shown on a column's card."""
    stats = profile.stats()
    facts = [("null", f"{profile.null_rate:.1%}")]
    if profile.values is not None:
        facts += [(k, _number(stats[k])) for k in ("min", "p50", "mean", "max")]
        if profile.sampled:
            facts.append(("quantiles from", f"a sample of {stats['sample_size']:,}"))
    else:
        facts.append(("distinct", f"{stats['distinct']:,}"))
        if stats["top"]:
            value, count = stats["top"][0]
            share = count / max(profile.rows - profile.null_count, 1)
            facts.append(("most frequent", f"{_compact(value)[:24]} ({share:.0%})"))
        if profile.untracked:
            facts.append(("values not counted", f"{profile.untracked:,} (new past the cap)"))
    if drift is not None:
        facts.append(("PSI", f"{drift.psi:.3f}"))
    return facts


def _target_facts(summary: dict[str, float | None] | None) -> str:
    """A regression target's distribution in one line of the summary table."""
    if summary is None:
        return ""
    return " · ".join(f"{name} {_number(summary[name])}" for name in ("min", "p50", "mean", "max"))


def _column_cards(
    report: ValidationReport,
    reference: dict[str, ColumnProfile],
    schema: DataSchema | None,
    max_plots: int,
) -> list[dict[str, Any]]:
    """One card per column, those with errors first, then warnings, then the rest in order."""
    by_column: dict[str | None, list[Anomaly]] = {}
    for anomaly in report.anomalies:
        by_column.setdefault(anomaly.column, []).append(anomaly)
    rank = {"error": 0, "warning": 1, None: 2}

    def severity(name: str) -> str | None:
        found = {a.severity for a in by_column.get(name, [])}
        return "error" if "error" in found else "warning" if found else None

    names = sorted(report.profiles, key=lambda n: rank[severity(n)])
    cards = []
    for index, name in enumerate(names):
        profile = report.profiles[name]
        want = schema.columns.get(name) if schema is not None else None
        plot = column_plot(profile, reference.get(name), want) if index < max_plots else None
        cards.append(
            {
                "name": name,
                "severity": severity(name),
                "anomalies": by_column.get(name, []),
                "stats": profile.stats(),
                "facts": _facts(profile, report.drift.get(name)),
                "plot": plot,
            }
        )
    return cards


def render_html(
    report: ValidationReport,
    reference: dict[str, ColumnProfile],
    schema: DataSchema | None,
    max_plots: int,
) -> str:
    """The self-contained HTML report (plots inline). ``reference`` holds the reference data's
    profiles (empty without one); ``schema`` the schema checked against, for its ranges and
    categories (None when it was inferred from this data)."""
    environment = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    environment.filters["compact"] = _compact
    thresholds = report.thresholds
    drift_rows = [
        {
            "column": d.column,
            "psi": d.psi,
            "js": d.js,
            "severity": graded(d.psi, thresholds.psi_warning, thresholds.psi_error),
            "target": d.column == report.target and report.task == "regression",
        }
        for d in sorted(report.drift.values(), key=lambda d: (-d.psi, d.column))
    ]
    plotted = min(max_plots, len(report.profiles))
    return environment.from_string(REPORT_TEMPLATE).render(
        status=report.status,
        source=report.source,
        date=report.date,
        target=report.target,
        task=report.task,
        target_facts=_target_facts(report.target_summary),
        fingerprint=report.fingerprint,
        schema_uri=report.schema_uri,
        schema_note=SCHEMA_NOTES[report.schema_origin]
        + ("; stored for later runs" if report.schema_stored else ""),
        reference=report.reference,
        reference_note=report.reference_note,
        keys=report.keys,
        row_count=report.row_count,
        column_count=len(report.profiles),
        counts=report.counts,
        anomalies=report.anomalies,
        drift=drift_rows,
        drifted=len(report.drifted()),
        columns=_column_cards(report, reference, schema, max_plots),
        plotted=plotted,
        hidden_plots=len(report.profiles) - plotted,
        thresholds=asdict(thresholds),
    )
