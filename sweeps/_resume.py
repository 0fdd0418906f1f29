"""Which run a `caviar run` writes to, and what of it is already recorded.

A resumed run keeps its run id and regenerates the same plan from the spec, so "already
recorded" is simply the trial ids present in `trials` for that run. Results are flushed as
epochs first, then trials; a crash between the two leaves epochs files whose trials never
landed, which are removed here so no curve is recorded twice.
"""

from __future__ import annotations

import logging

import pyarrow.parquet as pq

from analysis import ResultsStore, load_trials
from sweeps._errors import Problem, SpecError
from sweeps._runs import latest_run, new_run_id
from sweeps._spec import Sweep

__all__ = ["choose_run", "remove_orphan_epochs"]

log = logging.getLogger(__name__)


def choose_run(sweep: Sweep, store: ResultsStore, resume: bool) -> tuple[str, set[str]]:
    """The run id to write to and the trial ids it already has; reads only."""
    if not resume:
        return new_run_id(), set()
    previous = latest_run(store.sweep_dir)
    if previous is None:
        raise SpecError([Problem("--resume", sweep.name, "no earlier run of this sweep to resume")])
    if previous.digest != sweep.digest:
        raise SpecError(
            [
                Problem(
                    "--resume",
                    previous.run_id,
                    "the spec changed since this run; resume it with the spec it started with",
                )
            ]
        )
    done: set[str] = set()
    if (store.sweep_dir / "trials").is_dir():
        trials = load_trials(store.root, sweep.name)
        # A trials directory whose only files were lost reads as a frame with no columns.
        if {"run_id", "trial_id"} <= set(trials.columns):
            done = set(trials.loc[trials["run_id"] == previous.run_id, "trial_id"])
    return previous.run_id, done


def remove_orphan_epochs(store: ResultsStore, run_id: str, recorded: set[str]) -> int:
    """Delete epochs files of `run_id` holding a trial with no `trials` row (a crashed flush)."""
    run_dir = store.table_dir("epochs") / f"run={run_id}"
    removed = 0
    for path in sorted(run_dir.glob("round=*/part-*.parquet")):
        trial_ids = set(pq.read_table(path, columns=["trial_id"]).column(0).to_pylist())
        if not trial_ids <= recorded:
            path.unlink()
            removed += 1
    return removed
