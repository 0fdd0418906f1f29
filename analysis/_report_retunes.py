"""The report's "Re-tunes" section: the history of `caviar retune`, one row per re-tune.

Read from the `events` table (rows of kind "retune"), so the section appears only for sweeps
that have been re-tuned; it needs nothing from `sweeps`.
"""

from __future__ import annotations

import html

import pandas as pd

from analysis._fs import ResultsLike
from analysis._load import load_table

__all__ = ["retune_section"]

_COLUMNS = {
    "recorded_at": "when",
    "run_id": "run",
    "data_version": "data",
    "incumbent_trial_id": "incumbent",
    "incumbent_score_then": "then",
    "incumbent_score_now": "now",
    "drift": "drift",
    "action": "decision",
    "best_score": "best",
    "best_params": "best configuration",
}


def retune_section(results_dir: ResultsLike, sweep: str) -> str:
    """An HTML table of the sweep's re-tunes, oldest first; "" when it has none."""
    events = load_table(results_dir, "events", sweep)
    if "kind" not in events.columns:
        return ""
    retunes = events[events["kind"] == "retune"].sort_values("recorded_at")
    if retunes.empty:
        return ""
    shown = retunes[[c for c in _COLUMNS if c in retunes.columns]].rename(columns=_COLUMNS)
    if "when" in shown.columns:
        shown["when"] = pd.to_datetime(shown["when"]).dt.strftime("%Y-%m-%d %H:%M")
    if "drift" in shown.columns:
        shown["drift"] = shown["drift"].map({True: "yes", False: "no"}).fillna("")
    drifts = int(retunes["drift"].fillna(False).astype(bool).sum())
    lead = (
        f"<p>{len(retunes)} re-tune(s), {drifts} with drift: the incumbent's score when chosen "
        f"(<i>then</i>) and re-evaluated on that day's data (<i>now</i>).</p>"
    )

    def fmt(value: float) -> str:
        return "" if pd.isna(value) else f"{value:.4g}"

    table = shown.to_html(index=False, escape=True, float_format=fmt, na_rep="", border=0)
    return lead + table.replace("<table", f'<table title="{html.escape(sweep)} re-tunes"', 1)
