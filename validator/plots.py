"""Per-column distribution plots for the HTML report: PNG images as ``data:`` URIs, so that the
report is one self-contained file. Current data against the reference (when given) or the schema
(its range, its known categories)."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from validator.profile import ColumnProfile, sorted_quantiles
from validator.schema import ColumnSchema

CURRENT, REFERENCE, UNSEEN = "#2563eb", "#9ca3af", "#dc2626"
HIST_BINS = 30
BAR_CATEGORIES = 12
LABEL_CHARS = 22
# Values are untrusted text: '$' must not switch matplotlib into math mode.
STYLE: dict[str, Any] = {
    "text.parse_math": False,
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def column_plot(
    current: ColumnProfile, reference: ColumnProfile | None, schema: ColumnSchema | None
) -> str | None:
    """A PNG ``data:`` URI of the column's distribution, or None when it has no values."""
    if reference is not None and reference.type != current.type:
        reference = None  # a type change is reported; the two cannot share axes
    with rc_context(STYLE):  # type: ignore[arg-type]
        if current.values is not None:
            figure = _numeric(current, reference, schema)
        else:
            figure = _categorical(current, reference, schema)
        if figure is None:
            return None
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(height: float, left: float) -> tuple[Figure, Axes]:
    # Fixed margins: a layout engine costs more than drawing the plot.
    figure = Figure(figsize=(5.6, height), dpi=96)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=left, right=0.98, bottom=0.5 / height, top=1 - 0.3 / height)
    return figure, figure.add_subplot()


def _legend(axes: Axes, handles: list[Any] | None = None) -> None:
    """Above the plot, where it never hides data."""
    axes.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1),
        ncols=3,
        frameon=False,
        borderaxespad=0,
    )


def _edges(samples: list[np.ndarray], integers: bool) -> np.ndarray:
    """Equal-width bins over the central 99% of the (sorted) samples' values; one bin per value
    for small integers."""
    # The widest of the samples' central ranges (their values are sorted: no sorting here).
    ranges = np.array([sorted_quantiles(s, [0.005, 0.995]) for s in samples])
    low, high = float(ranges[:, 0].min()), float(ranges[:, 1].max())
    if integers and high - low <= HIST_BINS:
        return np.arange(np.floor(low) - 0.5, np.ceil(high) + 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, HIST_BINS + 1)


def _numeric(
    current: ColumnProfile, reference: ColumnProfile | None, schema: ColumnSchema | None
) -> Figure | None:
    """Histograms (share of rows per bin) of the current and the reference values."""
    profiles = {"current": current, "reference": reference}
    samples = {
        label: p.values
        for label, p in profiles.items()
        if p is not None and p.values is not None and len(p.values)
    }
    if not samples:
        return None
    edges = _edges(list(samples.values()), current.dtype == "integer")
    figure, axes = _figure(2.6, 0.12)
    for label in ("reference", "current"):
        if label in samples:
            _histogram(axes, samples[label], edges, label)
    if schema is not None and schema.min is not None and schema.max is not None:
        for bound in (schema.min, schema.max):
            if edges[0] <= bound <= edges[-1]:
                axes.axvline(bound, color=UNSEEN, linestyle="--", linewidth=1)
        axes.plot([], [], color=UNSEEN, linestyle="--", linewidth=1, label="schema range")
    axes.set_ylabel("share of rows")
    axes.set_xlabel("value (central 99% of values)")
    _legend(axes)
    return figure


def _histogram(axes: Axes, values: np.ndarray, edges: np.ndarray, label: str) -> None:
    # Values outside the central 99% are left out rather than piled into the end bins.
    counts, _ = np.histogram(values, bins=edges)
    shares = counts / len(values)
    if label == "reference":
        axes.stairs(shares, edges, fill=True, color=REFERENCE, alpha=0.6, label=label)
    else:
        axes.stairs(shares, edges, color=CURRENT, linewidth=1.5, label=label)


def _categorical(
    current: ColumnProfile, reference: ColumnProfile | None, schema: ColumnSchema | None
) -> Figure | None:
    """Horizontal bars of the most frequent categories, current beside reference; categories
    the schema does not know in red."""
    if current.counts is None or not len(current.counts):
        return None
    now = current.counts / current.counts.sum()
    before = None
    if reference is not None and reference.counts is not None and len(reference.counts):
        before = reference.counts / reference.counts.sum()
    shown = list(now.index[:BAR_CATEGORIES])
    if before is not None:
        shown += [c for c in before.index[:BAR_CATEGORIES] if c not in shown]
    shown = sorted(shown[:BAR_CATEGORIES], key=lambda c: now.get(c, 0.0))  # largest on top
    known = set(schema.categories) if schema is not None and schema.categories else None
    unseen = [known is not None and c not in known for c in shown]
    figure, axes = _figure(0.9 + 0.2 * len(shown), 0.3)
    positions = np.arange(len(shown))
    height = 0.4 if before is not None else 0.8
    offset = height / 2 if before is not None else 0.0
    values = [now.get(c, 0.0) for c in shown]
    colors = [UNSEEN if red else CURRENT for red in unseen]
    axes.barh(positions + offset, values, height=height, color=colors, label="current")
    if before is not None:
        old = [before.get(c, 0.0) for c in shown]
        axes.barh(positions - offset, old, height=height, color=REFERENCE, label="reference")
    axes.set_yticks(positions, [_short(c) for c in shown])
    hidden = len(now.index.union(before.index) if before is not None else now.index) - len(shown)
    axes.set_xlabel(
        "share of non-null rows" + (f" ({hidden} rarer categories not shown)" if hidden else "")
    )
    handles = [Patch(color=CURRENT, label="current")]
    handles += [Patch(color=REFERENCE, label="reference")] if before is not None else []
    handles += [Patch(color=UNSEEN, label="not in the schema")] if any(unseen) else []
    _legend(axes, handles)
    return figure


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
