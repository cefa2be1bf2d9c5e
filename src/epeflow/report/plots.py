"""Figures of the report as PNG bytes (matplotlib's object API with the Agg canvas: no pyplot state)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

HISTORY_X = "iteration"


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _numeric(values: Sequence[object]) -> np.ndarray:
    """Values as float64 with None / non-numbers as NaN (gaps in the curve)."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[i] = float(v)
    return out


def training_curves(history: Mapping[str, Sequence[object]], cols: int = 3) -> bytes | None:
    """One panel per loss of the model's `history` against `iteration`; None when nothing was recorded."""
    losses = [k for k, v in history.items() if k != HISTORY_X and len(v) > 0]
    if not losses:
        return None
    rows = math.ceil(len(losses) / cols)
    fig = Figure(figsize=(4.0 * min(cols, len(losses)), 2.8 * rows), layout="constrained")
    x_all = _numeric(list(history.get(HISTORY_X, [])))
    for i, name in enumerate(losses):
        y = _numeric(list(history[name]))
        x = x_all if len(x_all) == len(y) else np.arange(len(y), dtype=np.float64)
        ax = fig.add_subplot(rows, min(cols, len(losses)), i + 1)
        ax.plot(x, y, linewidth=1.0)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(HISTORY_X if x is x_all else "record")
        ax.grid(alpha=0.3)
    return figure_png(fig)


def histogram(values: np.ndarray, title: str, xlabel: str, bins: int = 50, log_y: bool = False) -> bytes:
    """Histogram of finite values (an empty panel says so)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    fig = Figure(figsize=(5.0, 3.0), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    if len(values):
        ax.hist(values, bins=bins, color="#4c72b0")
        if log_y:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return figure_png(fig)
