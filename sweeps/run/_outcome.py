"""What a run ends with: its outcome, its best row, and the space recorded beside the results.

Shared by every strategy's run (sweep, panda, retune), so what an outcome holds is written once;
the rule for "the best row" is `record/_best.best_row`'s, which `caviar best` and retune apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from analysis import ResultsPath, ResultsStore, load_trials, write_text_atomically
from sweeps.plan import Progress
from sweeps.record import best_row
from sweeps.spec import Sweep

__all__ = ["SweepOutcome", "outcome_of", "record_space", "run_best_row"]


@dataclass(frozen=True)
class SweepOutcome:
    run_id: str
    sweep_dir: ResultsPath
    evaluated: int
    skipped: int
    errors: int
    diverged: int
    best: dict[str, object] | None  # the best `trials` row of this run, all runs' attempts included


def record_space(store: ResultsStore, sweep: Sweep) -> None:
    """The space beside the results, so analysis knows each parameter's scale (log, 1-beta)."""
    text = json.dumps(sweep.space.to_dict(), indent=1)
    write_text_atomically(store.layout.space, text)


def run_best_row(sweep: Sweep, store: ResultsStore, run_id: str) -> dict[str, object] | None:
    """The run's best `trials` row (`record._best.best_row`'s rule); None before any ranks."""
    if not store.table_dir("trials").is_dir():
        return None
    trials = load_trials(store.root, sweep.name)
    if not {"run_id", sweep.spec.objective.metric} <= set(trials.columns):
        return None
    return best_row(sweep, trials[trials["run_id"] == run_id])


def outcome_of(run_id: str, store: ResultsStore, progress: Progress) -> SweepOutcome:
    """The outcome of trials run under `progress`; `skipped` and `best` are the caller's."""
    return SweepOutcome(
        run_id=run_id,
        sweep_dir=store.sweep_dir,
        evaluated=progress.done,
        skipped=0,
        errors=progress.errors,
        diverged=progress.diverged,
        best=None,
    )
