"""Plots of the search itself: the coarse-to-fine zoom, parallel coordinates, the BN lr range."""

from __future__ import annotations

import matplotlib as mpl  # the colormap registry only; no backend is selected by this import
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis._importance import categories as _categories
from analysis._importance import sampling_coordinates
from analysis._plot_axes import new_figure, scale_axis
from analysis._rounds import round_bounds
from analysis._scales import SpaceLike, resolve_scales, warp
from analysis._summary import Mode, objective_values

__all__ = ["plot_lr_range", "plot_parallel_coordinates", "plot_rounds"]


def plot_rounds(
    trials: pd.DataFrame, rounds: pd.DataFrame | None = None, space: SpaceLike | None = None
) -> Figure | None:
    """One panel per parameter: each round's bounds as a bar, its samples as dots.

    Returns None when there is nothing to show (a single round and no rounds table), so
    callers can skip the section.
    """
    bounds = round_bounds(trials, rounds, space)
    if bounds.empty:
        return None
    scales = resolve_scales(trials, space)
    names = list(dict.fromkeys(bounds["parameter"]))
    figure = new_figure(6.4, 0.6 + 1.9 * len(names))
    axes = figure.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names, strict=True):
        mine = bounds.loc[bounds["parameter"] == name]
        offsets = {run: i * 0.25 for i, run in enumerate(sorted(set(mine["run_id"])))}
        for _, row in mine.iterrows():
            y = row["round"] + offsets[row["run_id"]]
            ax.plot(
                [row["low"], row["high"]],
                [y, y],
                linewidth=8,
                alpha=0.35,
                color="#1f77b4",
                solid_capstyle="butt",
            )
        if name in trials.columns and "round" in trials.columns:
            ax.scatter(trials[name], trials["round"], s=8, color="black", alpha=0.6, zorder=3)
        values = np.concatenate(
            [
                mine[["low", "high"]].to_numpy(dtype=float).ravel(),
                pd.to_numeric(trials.get(name), errors="coerce").dropna().to_numpy(dtype=float)
                if name in trials
                else [],
            ]
        )
        scale_axis(ax, scales.get(name, "linear"), values)
        ax.invert_yaxis()
        ax.set_ylabel("round")
        ax.set_yticks(sorted(set(mine["round"])))
        label = (
            "bounds from the rounds table"
            if mine["source"].iloc[0] == "rounds"
            else ("range sampled in each round")
        )
        ax.set_title(f"{name}: {label}", fontsize="medium")
        ax.grid(True, axis="x", alpha=0.3)
    return figure


def plot_parallel_coordinates(
    df: pd.DataFrame,
    objective: str = "val_accuracy",
    space: SpaceLike | None = None,
    *,
    mode: Mode = "max",
) -> Figure:
    """One line per ok trial across every searched parameter (in sampling coordinates, each
    axis scaled to its range) and the objective; better trials darker and drawn on top."""
    scales = resolve_scales(df, space, exclude=(objective,))
    values = objective_values(df, objective, mode)
    ok = np.isfinite(values.to_numpy())
    if "status" in df.columns:
        ok &= (df["status"] == "ok").to_numpy()
    rows = df.loc[ok].dropna(subset=list(scales))
    y = values.loc[rows.index].to_numpy()
    spec = space if space is not None else df.attrs.get("space")
    x, domain = sampling_coordinates(rows, scales, spec)
    unit = (x - domain[:, 0]) / (domain[:, 1] - domain[:, 0])
    for column, scale in enumerate(scales.values()):
        if scale == "reverse_log":  # so that larger beta is higher, as the labels read
            unit[:, column] = 1 - unit[:, column]
    y_low, y_high = (np.nanmin(y), np.nanmax(y)) if len(y) else (0.0, 1.0)
    y_unit = (y - y_low) / (y_high - y_low) if y_high > y_low else np.full_like(y, 0.5)
    # Colour by rank, not value: accuracies bunch near the top, ranks spread the colours evenly.
    ranks = pd.Series(y).rank(ascending=mode == "min", method="average").to_numpy()
    goodness = 1 - (ranks - 1) / max(len(y) - 1, 1)
    figure = new_figure(max(6.4, 1.6 * (len(scales) + 1)), 4.2)
    ax = figure.add_subplot()
    positions = np.arange(len(scales) + 1)
    cmap = mpl.colormaps["viridis_r"]
    for i in np.argsort(goodness):
        width = 0.5 + 1.5 * goodness[i]
        ax.plot(positions, [*unit[i], y_unit[i]], color=cmap(goodness[i]), alpha=0.75, lw=width)
    labels = []
    for column, (name, scale) in enumerate(scales.items()):
        low, high = domain[column]
        if scale == "choice":
            span = "/".join(map(str, _categories(rows[name], (spec or {}).get(name))))
        elif scale == "reverse_log":  # flipped above: bottom is the smaller beta
            span = f"{_fmt_end(high, scale)}..{_fmt_end(low, scale)}"
        else:
            span = f"{_fmt_end(low, scale)}..{_fmt_end(high, scale)}"
        labels.append(f"{name}\n{span}")
    labels.append(f"{objective}\n{y_low:.3g}..{y_high:.3g}")
    ax.set_xticks(positions, labels, fontsize="small")
    ax.set_yticks([0, 0.5, 1], ["low", "", "high"])
    for p in positions:
        ax.axvline(float(p), color="grey", linewidth=0.8)
    ax.set_title(f"parallel coordinates ({len(rows)} ok trials; darker = better {objective})")
    return figure


def _fmt_end(u: float, scale: str) -> str:
    if scale == "log":
        return f"{10**u:.3g}"
    if scale == "reverse_log":
        return f"{1 - 10**u:.4g}"
    return f"{u:.3g}"


def plot_lr_range(
    df: pd.DataFrame,
    widths: pd.DataFrame,
    objective: str = "val_accuracy",
    *,
    by: str = "batchnorm",
    param: str = "lr",
) -> Figure:
    """Objective vs learning rate per group of ``by``, each group's good range shaded.

    ``widths`` is `lr_range_width`'s output for the same frame.
    """
    figure = new_figure(6.8, 4.2)
    ax = figure.add_subplot()
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
    values = pd.to_numeric(df[objective], errors="coerce")
    for i, (_, row) in enumerate(widths.iterrows()):
        color = colors[i % len(colors)]
        group = df.loc[df[by] == row[by]].sort_values(param)
        label = f"{by}={row[by]}: {row['width_decades']:.2f} decades ≥ cutoff"
        ax.plot(
            group[param],
            values.loc[group.index],
            marker="o",
            markersize=3,
            color=color,
            label=label,
        )
        if np.isfinite(row["lr_low"]):
            ax.axvspan(row["lr_low"], row["lr_high"], color=color, alpha=0.12)
        ax.axhline(row["cutoff"], color=color, linestyle="--", linewidth=0.8)
    scale_axis(ax, "log", warp(df[param].to_numpy(dtype=float), "linear"))
    ax.set_xlabel(f"{param} (log scale)")
    ax.set_ylabel(objective)
    ax.grid(True, which="major", alpha=0.3)
    figure.legend(fontsize="small", loc="outside lower center", ncols=2)  # keeps the curves clear
    ax.set_title(f"{objective} vs {param}, with and without {by}")
    return figure
