"""A strategy whose configurations are Ray Tune trials, start to finish: plan the points (or
open the proposer), run them on Ray Tune inside the run's frame, and say its best row. The
strategy table names it (`run_on_tune`) as the driver of every such row."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from analysis import ResultsPath
from sweeps._errors import Problem, RunError
from sweeps.plan import Point, Progress, Proposer
from sweeps.run import SweepOutcome, open_run, remove_orphan_epochs, run_best_row, trial_slots
from sweeps.spec import Sweep, plan_points, strategy_row
from sweeps.tune._drivers import open_driver
from sweeps.tune._trials import run_trials

__all__ = ["run_on_tune"]

log = logging.getLogger(__name__)


def run_on_tune(
    sweep: Sweep,
    results_dir: ResultsPath,
    *,
    address: str | None,
    resume: bool,
    show: Callable[[Progress], None] | None,
    run_id: str | None,
) -> SweepOutcome:
    """A strategy whose configurations are Ray Tune trials: its fixed plan, or its proposer's
    points as results come (an adaptive row)."""
    points = plan_points(sweep)
    adaptive = strategy_row(sweep.spec.strategy).adaptive
    with open_run(
        sweep, results_dir, address=address, resume=resume, run_id=run_id, planned=len(points)
    ) as run:
        store, choice = run.store, run.choice
        done = choice.done
        todo = [p for p in points if p.trial_id not in done]
        if resume and remove_orphan_epochs(store, run.run_id, done):
            log.info("removed epochs files whose trials were never recorded")
        slots = trial_slots(sweep, run.session)
        work: list[Point] | Proposer = (
            open_driver(sweep, store, choice.run_id, points, choice.recorded, edited=choice.edited)
            if adaptive
            else todo
        )
        outcome = run_trials(
            sweep, store, run.run_id, work, show=show, parallel_trials=slots,
            gpus=run.session.gpus, cpus=run.session.cpus,
        )  # fmt: skip
    if outcome.evaluated and outcome.errors == outcome.evaluated:
        raise RunError([Problem("trials", outcome.errors, "every trial failed; see `error`")])
    return replace(outcome, skipped=len(done), best=run_best_row(sweep, store, run.run_id))
