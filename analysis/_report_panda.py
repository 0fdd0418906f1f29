"""The report's "Babysitting" section for panda sweeps: each model's curve, its rollbacks drawn.

Panda records every decision in `events` (action keep / raise / rollback / stop, learning rate
before and after) and keeps abandoned epochs in `epochs` (flagged `abandoned`), so the curve a
model really followed and the branches it backed out of can both be drawn. The section appears
only for sweeps with such events; it needs nothing from `sweeps`.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from analysis._fs import ResultsLike
from analysis._load import load_epochs, load_table
from analysis._report_sections import image, table

__all__ = ["panda_section", "plot_babysitting"]

_ACTIONS = ("keep", "raise", "rollback", "stop")


def plot_babysitting(epochs: pd.DataFrame, events: pd.DataFrame, metric: str) -> Figure:
    """One panel per model: kept epochs as a line, abandoned ones dashed, rollbacks marked."""
    models = sorted(events["trial_id"].dropna().unique())
    fig = Figure(figsize=(7.0, 2.6 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    for ax, model in zip(axes, models, strict=True):
        mine = epochs[epochs["trial_id"] == model]
        order = mine.sort_values(["decision", "epoch"], kind="stable")
        kept = order[~order["abandoned"].fillna(False).astype(bool)]
        ax.plot(kept["epoch"], kept[metric], "-o", color="C0", ms=3, label="kept")
        for _, branch in order[order["abandoned"].fillna(False).astype(bool)].groupby("decision"):
            start = kept[kept["epoch"] == branch["epoch"].min() - 1]
            xs = pd.concat([start["epoch"], branch["epoch"]])
            ys = pd.concat([start[metric], branch[metric]])
            ax.plot(xs, ys, "--x", color="C3", ms=4, label="abandoned")
        decided = events[(events["trial_id"] == model) & (events["action"] == "rollback")]
        for _, row in decided.iterrows():
            ax.axvline(row["epoch"], color="C3", alpha=0.25, lw=1)
        ax.set_title(f"{model}: {len(decided)} rollback(s)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=8, loc="best")
    return fig


def panda_section(results_dir: ResultsLike, sweep: str, metric: str) -> str:
    """The curves and the decision log; "" for sweeps that were not babysat."""
    events = load_table(results_dir, "events", sweep)
    if not {"action", "trial_id", "epoch"} <= set(events.columns):
        return ""
    events = events[events["action"].isin(_ACTIONS) & events["trial_id"].notna()]
    epochs = load_epochs(results_dir, sweep)
    if events.empty or not {"abandoned", "decision", metric} <= set(epochs.columns):
        return ""
    figure = image(plot_babysitting(epochs, events, metric), "babysitting curves")
    log = events.sort_values(["trial_id", "decision"])[
        [c for c in ("trial_id", "epoch", "action", "metric", "lr_before", "lr_after", "reason")
         if c in events.columns]
    ]  # fmt: skip
    lead = (
        "<p>Every decision of the babysitter: kept periods as a solid line, periods it rolled "
        "back from dashed (the model went back to its last good checkpoint).</p>"
    )
    return lead + figure + table(log)
