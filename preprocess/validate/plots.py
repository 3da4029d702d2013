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

from preprocess.validate.profile import ColumnProfile
from preprocess.validate.schema import ColumnSchema

CURRENT, REFERENCE, UNSEEN = "#2563eb", "#9ca3af", "#dc2626"
HIST_BINS = 30
BAR_CATEGORIES = 12
LABEL_CHARS = 24
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
        # Fixed margins: a layout engine costs more than drawing the plot.
        figure = Figure(figsize=(5.6, 2.5), dpi=96)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        if current.values is not None:
            drawn = _numeric(axes, current, reference, schema)
            figure.subplots_adjust(left=0.12, right=0.98, bottom=0.2, top=0.96)
        else:
            drawn = _categorical(axes, current, reference, schema)
            figure.subplots_adjust(left=0.27, right=0.98, bottom=0.2, top=0.96)
        if not drawn:
            return None
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _numeric(
    axes: Axes, current: ColumnProfile, reference: ColumnProfile | None, schema: ColumnSchema | None
) -> bool:
    """Histograms (share of rows per bin) over the central 99% of both samples' values."""
    samples = [p.values for p in (current, reference) if p is not None and p.values is not None]
    pooled = (
        np.concatenate([s for s in samples if len(s)]) if any(len(s) for s in samples) else None
    )
    if pooled is None:
        return False
    low, high = np.quantile(pooled, [0.005, 0.995])
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HIST_BINS + 1)
    if reference is not None and reference.values is not None and len(reference.values):
        _histogram(axes, reference.values, edges, REFERENCE, "reference")
    if current.values is not None and len(current.values):
        _histogram(axes, current.values, edges, CURRENT, "current")
    if schema is not None:
        for bound in (schema.min, schema.max):
            if bound is not None and low <= bound <= high:
                axes.axvline(bound, color=UNSEEN, linestyle="--", linewidth=1)
        axes.plot([], [], color=UNSEEN, linestyle="--", linewidth=1, label="schema range")
    axes.set_ylabel("share of rows")
    axes.set_xlabel("value (central 99% of values)")
    axes.legend(loc="upper right", frameon=False)
    return True


def _histogram(axes: Axes, values: np.ndarray, edges: np.ndarray, color: str, label: str) -> None:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    shares = counts / max(len(values), 1)
    filled = label == "reference"
    axes.stairs(
        shares,
        edges,
        fill=filled,
        color=color,
        alpha=0.6 if filled else 1.0,
        linewidth=1.5,
        label=label,
    )


def _categorical(
    axes: Axes, current: ColumnProfile, reference: ColumnProfile | None, schema: ColumnSchema | None
) -> bool:
    """Horizontal bars of the most frequent categories; unseen ones in red."""
    if current.counts is None or not len(current.counts):
        return False
    now = current.counts / current.counts.sum()
    before = None
    if reference is not None and reference.counts is not None and len(reference.counts):
        before = reference.counts / reference.counts.sum()
    shown = list(now.index[:BAR_CATEGORIES])
    if before is not None:
        shown += [c for c in before.index[:BAR_CATEGORIES] if c not in shown]
    shown = sorted(shown[:BAR_CATEGORIES], key=lambda c: -now.get(c, 0.0))[::-1]
    known = set(schema.categories) if schema is not None and schema.categories else None
    positions = np.arange(len(shown))
    height = 0.4 if before is not None else 0.8
    colors = [UNSEEN if known is not None and c not in known else CURRENT for c in shown]
    offset = height / 2 if before is not None else 0.0
    values = [now.get(c, 0.0) for c in shown]
    axes.barh(positions + offset, values, height=height, color=colors, label="current")
    if before is not None:
        old = [before.get(c, 0.0) for c in shown]
        axes.barh(positions - offset, old, height=height, color=REFERENCE, label="reference")
    axes.set_yticks(positions, [_short(c) for c in shown])
    axes.set_xlabel("share of non-null rows" + ("  (red: not in the schema)" if known else ""))
    axes.legend(loc="lower right", frameon=False)
    return True


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
