"""One sweep, start to finish: plan the points, run them on Ray Tune, record every result."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from analysis import ResultsPath, ResultsStore
from sweeps._errors import Problem, RunError
from sweeps.run._lifecycle import open_run
from sweeps.run._lock import refuse_if_locked
from sweeps.run._outcome import SweepOutcome, best_row
from sweeps.run._preflight import check_results_dir
from sweeps.run._progress import Progress
from sweeps.run._resources import trial_slots
from sweeps.run._resume import remove_orphan_epochs
from sweeps.spec._spec import Sweep
from sweeps.strategies._drivers import open_driver
from sweeps.strategies._points import Point, plan_points
from sweeps.strategies._proposer import Proposer
from sweeps.strategies._strategies import behaviour
from sweeps.tune._trials import run_trials

__all__ = ["run_sweep"]

log = logging.getLogger(__name__)


def run_sweep(
    sweep: Sweep,
    results_dir: ResultsPath,
    *,
    address: str | None = None,
    resume: bool = False,
    show: Callable[[Progress], None] | None = None,
    run_id: str | None = None,
) -> SweepOutcome:
    """Nothing is written until Ray is up and the resources are known to fit.

    `run_id` names a fresh run (`auto` decides before the run starts and records under it).
    """
    from sweeps.run._ray_session import ray_session

    strategy = behaviour(sweep.spec.strategy)
    if strategy.decides:
        from sweeps.strategies._auto import (
            decide_auto,  # panda or caviar: the concrete sweep to run
        )

        check_results_dir(results_dir)  # before Ray starts: a bad --results fails at once
        refuse_if_locked(ResultsStore(results_dir, sweep.name).sweep_dir)  # and a held sweep
        with ray_session(address) as session:  # one Ray for the decision's probe and the run
            concrete, run_id = decide_auto(sweep, results_dir, session, resume=resume)
            return run_sweep(
                concrete, results_dir, address=address, resume=resume, show=show, run_id=run_id
            )
    if strategy.own_loop:
        from sweeps.panda import run_panda  # babysitting has its own loop; see docs/panda.md

        return run_panda(
            sweep, results_dir, address=address, resume=resume, show=show, run_id=run_id
        )

    points = plan_points(sweep)
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
            if strategy.adaptive
            else todo
        )
        outcome = run_trials(
            sweep, store, run.run_id, work, show=show, parallel_trials=slots,
            gpus=run.session.gpus, cpus=run.session.cpus,
        )  # fmt: skip
    if outcome.evaluated and outcome.errors == outcome.evaluated:
        raise RunError([Problem("trials", outcome.errors, "every trial failed; see `error`")])
    return replace(outcome, skipped=len(done), best=best_row(sweep, store, run.run_id))
