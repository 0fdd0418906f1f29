"""Plots of one sweep's outcomes: objective per hyperparameter, importance, curves, convergence.

Every function returns a `matplotlib.figure.Figure` (save it with ``fig.savefig("x.png")`` or
``.svg``; a notebook displays it). Hyperparameter axes use the sampling scale: log for ``lr``,
reverse-log (labelled 0.9, 0.99, 0.999) for ``beta``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis._errors import ResultsError
from analysis._plot_axes import new_figure, scale_axis
from analysis._scales import Scale, SpaceLike, infer_scale, resolve_scales
from analysis._summary import Mode, best, best_so_far, objective_values

__all__ = [
    "plot_best_so_far",
    "plot_importance",
    "plot_learning_curves",
    "plot_objective_vs",
]

_OK, _BAD = "#1f77b4", "#d62728"


def plot_objective_vs(
    df: pd.DataFrame,
    param: str,
    objective: str = "val_accuracy",
    *,
    scale: Scale | None = None,
    space: SpaceLike | None = None,
    mode: Mode = "max",
) -> Figure:
    """Objective against one hyperparameter; diverged trials as red crosses along the bottom.

    ``scale`` defaults to the parameter's scale in ``space`` / the stored space / the data.
    Trials are coloured by round when the sweep has several.
    """
    if param not in df.columns:
        raise ResultsError("param", param, "no such column in the trials")
    if scale is None:
        scale = resolve_scales(df, space).get(param) or infer_scale(df[param])
    values = objective_values(df, objective, mode)
    ok = np.isfinite(values.to_numpy())
    if "status" in df.columns:
        ok &= (df["status"] == "ok").to_numpy()
    figure = new_figure()
    ax = figure.add_subplot()
    x = _positions(df[param], scale)
    rounds = df["round"].to_numpy() if "round" in df.columns else np.zeros(len(df))
    if len(np.unique(rounds)) > 1:
        points = ax.scatter(x[ok], values[ok], c=rounds[ok], cmap="viridis", s=22, alpha=0.85)
        figure.colorbar(points, ax=ax, label="round")
    else:
        ax.scatter(x[ok], values[ok], s=22, alpha=0.8, color=_OK, label="ok")
    failed = ~ok
    if failed.any():
        finite = values[ok]
        floor = (
            finite.min() if mode == "max" and len(finite) else (finite.max() if len(finite) else 0)
        )
        ax.scatter(
            x[failed],
            np.full(failed.sum(), floor),
            marker="x",
            color=_BAD,
            label="diverged / failed",
        )
        ax.legend(loc="best", fontsize="small")
    if scale == "choice":
        labels = _categories(df[param])
        ax.set_xticks(range(len(labels)), [str(v) for v in labels])
    else:
        scale_axis(ax, scale, df[param].to_numpy(dtype=float))
    ax.set_xlabel(f"{param} ({scale} scale)")
    ax.set_ylabel(objective)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{objective} vs {param}")
    return figure


def _categories(values: pd.Series) -> list[object]:
    return sorted(pd.unique(values.dropna()), key=lambda v: (str(type(v)), v))


def _positions(values: pd.Series, scale: Scale) -> np.ndarray:
    if scale != "choice":
        return values.to_numpy(dtype=float)
    codes = values.map({c: i for i, c in enumerate(_categories(values))}).to_numpy(dtype=float)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(codes))  # fixed: same picture
    return codes + jitter


def plot_importance(table: pd.DataFrame) -> Figure:
    """Horizontal bars of `importance`'s output (share of the main effects), ± one std."""
    shown = table.iloc[::-1]
    figure = new_figure(6.4, 0.5 + 0.45 * max(len(shown), 2))
    ax = figure.add_subplot()
    total = table["variance_fraction"].sum()
    errors = shown["std"] / total if total > 0 else None
    labels = [f"{p} ({s})" for p, s in zip(shown["parameter"], shown["scale"], strict=True)]
    ax.barh(labels, shown["importance"], xerr=errors, color=_OK, alpha=0.85, capsize=3)
    ax.set_xlabel("importance (share of main effects, fANOVA)")
    ax.set_xlim(
        0, max(1.0, float((shown["importance"] + (errors if errors is not None else 0)).max()))
    )
    ax.grid(True, axis="x", alpha=0.3)
    return figure


def plot_learning_curves(
    trials: pd.DataFrame,
    epochs: pd.DataFrame,
    objective: str = "val_accuracy",
    *,
    k: int = 5,
    mode: Mode = "max",
    metric: str | None = None,
) -> Figure:
    """``metric`` (default: the objective, if epochs record it) per epoch for the ``k`` best."""
    metric = metric or (objective if objective in epochs.columns else "val_accuracy")
    if metric not in epochs.columns:
        raise ResultsError("metric", metric, "no such column in the epochs")
    top = best(trials, k, objective, mode)
    figure = new_figure()
    ax = figure.add_subplot()
    keys = [c for c in ("run_id", "trial_id") if c in top.columns and c in epochs.columns]
    for rank, (_, row) in enumerate(top.iterrows(), start=1):
        mask = np.logical_and.reduce([epochs[c] == row[c] for c in keys]) if keys else []
        curve = epochs.loc[mask].sort_values("epoch")
        ax.plot(
            curve["epoch"],
            curve[metric],
            marker="o",
            markersize=3,
            label=f"#{rank} {row.get('trial_id', '')}: {row[objective]:.4g}",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    if len(top):
        ax.legend(fontsize="small", title=f"top {len(top)} by {objective}")
    ax.set_title(f"learning curves of the top {len(top)} configurations")
    return figure


def plot_best_so_far(
    df: pd.DataFrame, objective: str = "val_accuracy", mode: Mode = "max"
) -> Figure:
    """Each trial's objective in finishing order, with the running best: did it converge?"""
    history = best_so_far(df, objective, mode)
    figure = new_figure(6.4, 3.4)
    ax = figure.add_subplot()
    ax.scatter(history["n"], history["value"], s=12, alpha=0.6, color=_OK, label="trial")
    ax.step(history["n"], history["best"], where="post", color="black", label="best so far")
    ax.set_xlabel("trials finished")
    ax.set_ylabel(objective)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return figure
