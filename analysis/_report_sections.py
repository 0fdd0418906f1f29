"""The HTML report's sections, one function each; every one answers a question about a sweep.

Each returns an HTML fragment (strings escaped, images as base64 PNG data URIs) or a short note
saying why it has nothing to show, so one missing piece never breaks the whole report.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis._errors import ResultsError
from analysis._importance import importance
from analysis._lr_range import lr_range_width
from analysis._next_search import next_bounds
from analysis._plot_axes import figure_bytes
from analysis._plot_search import plot_lr_range, plot_parallel_coordinates, plot_rounds
from analysis._plots import (
    plot_best_so_far,
    plot_importance,
    plot_learning_curves,
    plot_objective_vs,
)
from analysis._rounds import round_bounds
from analysis._scales import Scale
from analysis._summary import Mode, best, round_summary

__all__ = ["SweepData", "sections"]

_log = logging.getLogger(__name__)


class SweepData:
    """What every section reads: the frames, the objective and the resolved scales."""

    def __init__(
        self,
        name: str,
        trials: pd.DataFrame,
        epochs: pd.DataFrame,
        rounds: pd.DataFrame,
        objective: str,
        mode: Mode,
        scales: dict[str, Scale],
    ) -> None:
        self.name, self.trials, self.epochs, self.rounds = name, trials, epochs, rounds
        self.objective, self.mode, self.scales = objective, mode, scales


def sections(data: SweepData) -> list[tuple[str, str]]:
    """(title, HTML) in reading order: best, importance, where next, plots, convergence, rounds."""
    builders: list[tuple[str, Callable[[SweepData], str]]] = [
        ("Top configurations", _top),
        ("Which hyperparameters mattered", _importance),
        ("Where the next search should look", _next),
        ("Objective per hyperparameter", _per_parameter),
        ("Parallel coordinates", _parallel),
        ("Learning curves of the best", _curves),
        ("Did the search converge?", _convergence),
        ("Coarse-to-fine rounds", _rounds),
        ("BatchNorm and the learning-rate range", _batchnorm),
    ]
    out = []
    for title, build in builders:
        try:
            body = build(data)
        except ResultsError as exc:
            body = note(f"Not available: {exc}")
        if body:
            out.append((title, body))
    return out


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def image(figure: Figure, alt: str) -> str:
    encoded = base64.b64encode(figure_bytes(figure)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def table(frame: pd.DataFrame) -> str:
    def fmt(value: float) -> str:
        return "" if pd.isna(value) else f"{value:.4g}"

    return frame.to_html(index=False, escape=True, float_format=fmt, na_rep="", border=0)


def _top(data: SweepData) -> str:
    top = best(data.trials, 10, data.objective, data.mode)
    if top.empty:
        return note("No trial finished with a finite objective.")
    columns = [c for c in ("trial_id", "run_id", "round") if c in top.columns]
    columns += [*data.scales, data.objective]
    columns += [c for c in ("epochs_done", "duration_s") if c in top.columns]
    winner = top.iloc[0]
    params = ", ".join(f"{n}={_value(winner[n])}" for n in data.scales)
    lead = (
        f"<p>Best {html.escape(data.objective)} = <b>{winner[data.objective]:.4g}</b> "
        f"({html.escape(str(winner.get('trial_id', '')))}): {html.escape(params)}</p>"
    )
    return lead + table(top[list(dict.fromkeys(columns))])


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float | np.floating) else str(value)


def _importance(data: SweepData) -> str:
    result = importance(data.trials, data.objective, data.scales, mode=data.mode)
    first = result.iloc[0]
    lead = (
        f"<p><b>{html.escape(first['parameter'])}</b> ranks first: its main effect is "
        f"{first['importance']:.0%} of all main effects (fANOVA over a 64-tree random forest, "
        "computed in sampling coordinates: log10 for log scales, log10(1 - x) for reverse-log, "
        "diverged trials counted as the worst). Main effects explain "
        f"{result['variance_fraction'].sum():.0%} of the variance; the rest is interactions."
        "</p>"
    )
    return lead + image(plot_importance(result), "importance") + table(result)


def _next(data: SweepData) -> str:
    frame = next_bounds(data.trials, data.objective, data.scales, mode=data.mode)
    edges = frame.loc[frame["at_edge"] != "", ["parameter", "at_edge"]]
    advice = "".join(
        f"<li>{html.escape(p)}: the best trials reach the <b>{html.escape(e)}</b> end of the "
        "searched range; widen it there before zooming in.</li>"
        for p, e in edges.itertuples(index=False)
    )
    lead = "<p>The ranges spanned by the best 10 % of trials (at least 3).</p>"
    return lead + (f"<ul>{advice}</ul>" if advice else "") + table(frame)


def _per_parameter(data: SweepData) -> str:
    figures = []
    for name, scale in data.scales.items():
        figure = plot_objective_vs(data.trials, name, data.objective, scale=scale, mode=data.mode)
        figures.append(image(figure, f"{data.objective} vs {name}"))
    return '<div class="grid">' + "".join(figures) + "</div>"


def _parallel(data: SweepData) -> str:
    figure = plot_parallel_coordinates(data.trials, data.objective, data.scales, mode=data.mode)
    return image(figure, "parallel coordinates")


def _curves(data: SweepData) -> str:
    if data.epochs.empty:
        return note("No epochs table: no learning curves were recorded.")
    figure = plot_learning_curves(data.trials, data.epochs, data.objective, k=5, mode=data.mode)
    return image(figure, "learning curves")


def _convergence(data: SweepData) -> str:
    summary = round_summary(data.trials, data.objective, data.mode)
    return image(plot_best_so_far(data.trials, data.objective, data.mode), "best so far") + table(
        summary
    )


def _rounds(data: SweepData) -> str:
    figure = plot_rounds(data.trials, data.rounds, data.scales)
    if figure is None:
        return note("One round only: this sweep did not zoom (not coarse-to-fine).")
    bounds = round_bounds(data.trials, data.rounds, data.scales)
    return image(figure, "round bounds") + table(bounds)


def _batchnorm(data: SweepData) -> str:
    trials = data.trials
    if not {"batchnorm", "lr"} <= set(trials.columns) or trials["batchnorm"].nunique() < 2:
        return ""  # not a BatchNorm comparison: no section
    widths = lr_range_width(trials, data.objective, "batchnorm", 0.95, mode=data.mode)
    lines = "".join(
        f"<li>batchnorm={html.escape(str(r['batchnorm']))}: best {r['best']:.4g}; "
        f"{r['good']} of {r['trials']} learning rates reach ≥ 95 % of it, "
        f"spanning <b>{r['width_decades']:.2f} decades</b> "
        f"({r['lr_low']:.3g} to {r['lr_high']:.3g}; widest unbroken run "
        f"{r['contiguous_decades']:.2f} decades)</li>"
        for _, r in widths.iterrows()
    )
    figure = plot_lr_range(trials, widths, data.objective, by="batchnorm")
    return (
        f"<ul>{lines}</ul>" + image(figure, "lr range with and without BatchNorm") + table(widths)
    )
