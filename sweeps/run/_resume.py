"""Which run a `caviar run` writes to, and what of it is already recorded.

A resumed run keeps its run id and regenerates the same plan from the spec, so "already
recorded" is simply the trial ids present in `trials` for that run. Results are flushed as
epochs first, then trials; a crash between the two leaves epochs files whose trials never
landed, which are removed here so no curve is recorded twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq

from analysis import ResultsStore, arrow_filesystem, arrow_path, load_trials
from sweeps._errors import Problem, SpecError
from sweeps.record import load_search_state
from sweeps.run._manifests import latest_run, new_run_id
from sweeps.spec import Sweep, check_continuation, strategy_row

__all__ = ["RunChoice", "choose_run", "remove_orphan_epochs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunChoice:
    run_id: str
    done: set[str]  # trial ids already recorded for this run
    recorded: pd.DataFrame  # their `trials` rows
    edited: bool  # resumed under a spec that differs from the one the run started with


def choose_run(
    sweep: Sweep, store: ResultsStore, resume: bool, *, run_id: str | None = None
) -> RunChoice:
    """The run to write to and what it already has; reads only.

    Only a coarse-to-fine search continues under an edited spec (it replays its history, see
    sweeps/spec/_spec_edit.py); a fixed plan resumed under another spec would mix two plans.
    """
    if not resume:
        return RunChoice(run_id or new_run_id(), set(), pd.DataFrame(), edited=False)
    previous = latest_run(store.sweep_dir)
    if previous is None:
        raise SpecError([Problem("--resume", sweep.name, "no earlier run of this sweep to resume")])
    edited = previous.digest != sweep.digest
    if edited and not strategy_row(sweep.spec.strategy).continues_after_edit:
        raise SpecError(
            [
                Problem(
                    "--resume",
                    previous.run_id,
                    "the spec changed since this run; resume it with the spec it started with",
                )
            ]
        )
    recorded = pd.DataFrame()
    if store.table_dir("trials").is_dir():
        trials = load_trials(store.root, sweep.name)
        # A trials directory whose only files were lost reads as a frame with no columns.
        if {"run_id", "trial_id"} <= set(trials.columns):
            recorded = trials[trials["run_id"] == previous.run_id].reset_index(drop=True)
    done = set(recorded["trial_id"]) if not recorded.empty else set()
    if edited:
        state = load_search_state(store.sweep_dir, previous.run_id)
        if state is not None:
            check_continuation(state.spec, sweep, recorded)
    return RunChoice(previous.run_id, done, recorded, edited=edited)


def remove_orphan_epochs(store: ResultsStore, run_id: str, recorded: set[str]) -> int:
    """Delete epochs files of `run_id` holding a trial with no `trials` row (a crashed flush)."""
    removed = 0
    for path in store.parts("epochs", run_id):
        table = pq.read_table(
            arrow_path(path), columns=["trial_id"], filesystem=arrow_filesystem(path)
        )
        trial_ids = set(table.column(0).to_pylist())
        if not trial_ids <= recorded:
            path.unlink()
            removed += 1
    return removed
