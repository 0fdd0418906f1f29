"""Axes in sampling coordinates: log for learning rates, reverse-log for momentum-like betas.

Figures are built with `matplotlib.figure.Figure` directly, never pyplot: no global backend or
figure registry, so report generation works headless and in threads (it renders with Agg).
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

__all__ = ["figure_bytes", "new_figure", "reverse_log_axis", "scale_axis"]


def new_figure(width: float = 6.4, height: float = 4.0) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure


def figure_bytes(figure: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """The figure rendered as PNG or SVG bytes (for embedding in the HTML report)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()


def reverse_log_axis(ax: Axes, values: np.ndarray, axis: str = "x") -> None:
    """Space the axis by -log10(1 - beta) and label it in beta: 0.9, 0.99, 0.999, ...

    Equal distances are equal ratios of 1 - beta, the coordinates a reverse-log search samples
    uniformly in; the labels stay in the unit the user wrote in the spec.
    """

    def forward(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.log10(np.clip(1.0 - np.asarray(x, dtype=float), 1e-300, None))

    def inverse(u: np.ndarray) -> np.ndarray:
        return 1.0 - 10.0 ** (-np.asarray(u, dtype=float))

    finite = values[np.isfinite(values) & (values < 1)]
    nines_low = int(np.floor(forward(finite.min()))) if len(finite) else 1
    nines_high = int(np.ceil(forward(finite.max()))) if len(finite) else 3
    nines_low, nines_high = max(nines_low, 0), max(nines_high, nines_low + 1)
    major = [1.0 - 10.0**-k for k in range(nines_low, nines_high + 1) if k > 0]
    minor = [
        1.0 - m * 10.0**-k for k in range(nines_low, nines_high + 1) for m in range(2, 10) if k > 0
    ]
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("function", functions=(forward, inverse))
    target.set_major_locator(FixedLocator(major))
    target.set_minor_locator(FixedLocator(minor) if minor else NullLocator())
    target.set_major_formatter(FuncFormatter(lambda x, _pos: _nines(x)))
    if len(finite):
        pad = 0.05 * max(forward(finite.max()) - forward(finite.min()), 0.1)
        lims = inverse(np.array([forward(finite.min()) - pad, forward(finite.max()) + pad]))
        (ax.set_xlim if axis == "x" else ax.set_ylim)(float(lims[0]), float(lims[1]))


def _nines(x: float) -> str:
    if x <= 0 or x >= 1:
        return f"{x:g}"
    digits = max(1, int(np.ceil(-np.log10(1.0 - x) - 1e-9)))
    return f"{x:.{digits}f}"


def scale_axis(ax: Axes, scale: str, values: np.ndarray, axis: str = "x") -> None:
    """Put the axis in the parameter's sampling scale (choices are handled by the caller)."""
    if scale == "log":
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        target = ax.xaxis if axis == "x" else ax.yaxis
        plain = FuncFormatter(lambda x, _pos: f"{x:g}")
        target.set_major_formatter(plain)
        finite = values[np.isfinite(values) & (values > 0)]
        # Few decades: label 2x and 5x too, as plain numbers (16..256, not 2 x 10^1).
        narrow = len(finite) and np.log10(finite.max() / finite.min()) < 2.5
        target.set_minor_locator(LogLocator(subs=(2.0, 5.0) if narrow else "auto"))
        target.set_minor_formatter(plain if narrow else NullFormatter())
    elif scale == "reverse_log":
        reverse_log_axis(ax, values, axis)
