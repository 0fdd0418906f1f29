"""One self-contained HTML report per results directory: no external files, scripts or fonts.

Images are embedded as base64 PNG so the file can be mailed, attached to a ticket or opened from
an object store as it is. `caviar report` calls `write_report`.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from analysis._errors import ResultsError
from analysis._fs import ResultsLike, ResultsPath, results_path, write_text_atomically
from analysis._load import load_epochs, load_rounds, load_space, load_trials, sweeps_in
from analysis._report_panda import panda_section
from analysis._report_retunes import retune_section
from analysis._report_sections import SweepData, sections
from analysis._scales import resolve_scales
from analysis._summary import Mode, objective_values

__all__ = ["default_objective", "write_report"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.5rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.35rem; margin-top: 2.2rem;
     border-bottom: 2px solid #1f77b4; } h3 { font-size: 1.1rem; margin-top: 1.6rem; }
.meta { color: #666; font-size: .9rem; }
table { border-collapse: collapse; font-size: .82rem; margin: .6rem 0; display: block;
        overflow-x: auto; max-width: 100%; }
th, td { padding: .25rem .55rem; text-align: right; border-bottom: 1px solid #e3e3e3;
         white-space: nowrap; }
th { background: #f3f6fa; } tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: .5rem; }
.note { color: #666; font-style: italic; }
nav a { margin-right: .8rem; }
"""


def default_objective(trials: pd.DataFrame) -> tuple[str, Mode]:
    """The sweep's objective is not stored with its results; val_accuracy (max) when recorded,
    else val_loss (min), else train_loss (min)."""
    for column, mode in (("val_accuracy", "max"), ("val_loss", "min"), ("train_loss", "min")):
        if (
            column in trials.columns
            and np.isfinite(pd.to_numeric(trials[column], errors="coerce")).any()
        ):
            # Why the type ignore below: mode is one of the literals in the tuple above
            return column, mode  # type: ignore[return-value]
    raise ResultsError("objective", None, "no val_accuracy, val_loss or train_loss to rank by")


def write_report(
    results_dir: ResultsLike,
    out: ResultsLike | None = None,
    sweep: str | None = None,
    *,
    objective: str | None = None,
    mode: Mode | None = None,
) -> ResultsPath:
    """Write the HTML report and return its path.

    ``sweep=None`` reports every sweep in the directory (one section each). ``out`` defaults to
    ``<results>/<sweep>/report.html`` for one sweep, ``<results>/report.html`` for all (an
    object in the bucket when the results are in one).
    ``objective``/``mode`` default to `default_objective` (the sweep's spec is not stored).
    """
    results_dir = results_path(results_dir)
    known = sweeps_in(results_dir)
    if sweep is not None and sweep not in known:
        raise ResultsError("sweep", sweep, f"no such sweep in {results_dir} (sweeps: {known})")
    names = [sweep] if sweep is not None else known
    if not names:
        raise ResultsError("results_dir", str(results_dir), "holds no sweep")
    root = results_dir
    path = (
        results_path(out, "out")
        if out is not None
        else (root / names[0] if sweep else root) / "report.html"
    )
    if isinstance(path, Path) and not path.parent.is_dir():  # an object store has no directories
        raise ResultsError("out", str(path), "its directory does not exist")
    parts = [_sweep_html(results_dir, name, objective, mode, len(names) > 1) for name in names]
    title = f"caviar report: {', '.join(names)}"
    nav = (
        "<nav>" + "".join(f'<a href="#{_anchor(n)}">{html.escape(n)}</a>' for n in names) + "</nav>"
        if len(names) > 1
        else ""
    )
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">results: {html.escape(str(root.resolve()))} · generated '
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>{nav}{''.join(parts)}</body></html>\n"
    )
    write_text_atomically(path, page)
    return path


def _sweep_html(
    results_dir: ResultsPath,
    name: str,
    objective: str | None,
    mode: Mode | None,
    several: bool,
) -> str:
    trials = load_trials(results_dir, name)
    heading = f'<h2 id="{_anchor(name)}">{html.escape(name)}</h2>' if several else ""
    if trials.empty:
        return heading + '<p class="note">No trials recorded yet.</p>'
    if objective is None:
        objective, inferred_mode = default_objective(trials)
        mode = mode or inferred_mode
    mode = mode or ("min" if "loss" in objective else "max")
    objective_values(trials, objective, mode)  # a missing column is the user's error, raised
    space = load_space(results_dir, name)
    scales = resolve_scales(trials, space, exclude=(objective,))
    data = SweepData(
        name,
        trials,
        load_epochs(results_dir, name),
        load_rounds(results_dir, name),
        objective,
        mode,
        scales,
    )
    level = "h3" if several else "h2"
    body = [heading, _overview(data, space is not None)]
    for title, fragment in sections(data):
        body.append(f"<{level}>{html.escape(title)}</{level}>{fragment}")
    babysitting = panda_section(results_dir, name, objective)
    if babysitting:
        body.append(f"<{level}>Babysitting</{level}>{babysitting}")
    retunes = retune_section(results_dir, name)
    if retunes:
        body.append(f"<{level}>Re-tunes</{level}>{retunes}")
    return "".join(body)


def _overview(data: SweepData, stored_space: bool) -> str:
    trials = data.trials
    counts = trials["status"].value_counts() if "status" in trials.columns else pd.Series()
    status = ", ".join(f"{int(n)} {html.escape(str(s))}" for s, n in counts.items())
    runs = trials["run_id"].nunique() if "run_id" in trials.columns else 1
    source = "the stored search space" if stored_space else "inferred from the data"
    scales = ", ".join(f"{html.escape(n)} ({s})" for n, s in data.scales.items())
    return (
        f"<p>{len(trials)} trials in {runs} run(s): {status}. Objective: "
        f"<b>{html.escape(data.objective)}</b> ({data.mode}). Searched ({source}): {scales}.</p>"
    )


def _anchor(name: str) -> str:
    return "sweep-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
