"""Plots: sampling-scale axes, every figure renders to PNG and SVG, rounds skip gracefully."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import (
    importance,
    load_epochs,
    load_trials,
    lr_range_width,
    plot_best_so_far,
    plot_importance,
    plot_learning_curves,
    plot_lr_range,
    plot_objective_vs,
    plot_parallel_coordinates,
    plot_rounds,
)


def _tick_labels(figure: Figure) -> list[str]:
    figure.canvas.draw()
    return [t.get_text() for t in figure.axes[0].get_xticklabels() if t.get_text()]


def test_lr_is_plotted_on_a_log_axis(results_dir: Path) -> None:
    figure = plot_objective_vs(load_trials(results_dir, "s"), "lr")
    assert figure.axes[0].get_xscale() == "log"
    assert "1e-04" in _tick_labels(figure) or "0.0001" in _tick_labels(figure)


def test_beta_is_plotted_on_a_reverse_log_axis_labelled_in_beta(results_dir: Path) -> None:
    figure = plot_objective_vs(load_trials(results_dir, "s"), "beta")
    ax = figure.axes[0]
    assert ax.get_xscale() == "function"
    assert _tick_labels(figure) == ["0.9", "0.99", "0.999"]
    # Equal ratios of 1 - beta are equal distances: 0.9 -> 0.99 as wide as 0.99 -> 0.999.
    to_pixels = ax.transData.transform
    x = [to_pixels((b, 0))[0] for b in (0.9, 0.99, 0.999)]
    assert x[1] - x[0] == pytest.approx(x[2] - x[1], rel=1e-6)


def test_every_figure_renders_to_png_and_svg(results_dir: Path, tmp_path: Path) -> None:
    trials, epochs = load_trials(results_dir, "s"), load_epochs(results_dir, "s")
    figures = {
        "batch_size": plot_objective_vs(trials, "batch_size"),
        "importance": plot_importance(importance(trials, "val_accuracy")),
        "curves": plot_learning_curves(trials, epochs, k=3),
        "converge": plot_best_so_far(trials),
        "parallel": plot_parallel_coordinates(trials),
        "bn": plot_lr_range(trials, lr_range_width(trials)),
    }
    for name, figure in figures.items():
        path = tmp_path / f"{name}.png"
        figure.savefig(path, dpi=50)
        assert path.read_bytes().startswith(b"\x89PNG"), path
    figures["parallel"].savefig(tmp_path / "parallel.svg")
    assert "<svg" in (tmp_path / "parallel.svg").read_text()
    assert len(figures["curves"].axes[0].get_lines()) == 3


def test_round_zoom_is_skipped_without_rounds_and_drawn_with_them(
    results_dir: Path, tmp_path: Path, synth
) -> None:
    assert plot_rounds(load_trials(results_dir, "s")) is None
    synth.write_sweep(tmp_path, n=20, rounds=3)
    trials = load_trials(tmp_path, "s")
    observed = plot_rounds(trials)
    assert observed is not None and len(observed.axes) == 3  # lr, beta, hidden
    table = pd.DataFrame({"round": [0, 1, 2], "parameter": "lr", "low": [1e-4, 1e-3, 3e-3],
                          "high": [1.0, 0.1, 0.03]})  # fmt: skip
    zoom = plot_rounds(trials, table)
    assert zoom is not None and len(zoom.axes) == 1
    assert zoom.axes[0].get_xscale() == "log"
