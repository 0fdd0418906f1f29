"""Panda mode: babysit one model (or a few) instead of sampling many; see docs/panda.md.

Each model is one long Ray Tune trial that trains a period, judges it
(`sweeps.panda._babysitter`), saves the model when it improved, and reports; the driver
records every period's epochs and decisions as they arrive (`sweeps.panda._recorder`).
One trial per model rather than one Tuner per period: Tune's per-fit start-up would otherwise
dominate short periods, and nothing is lost by it, because the babysitter's state lives in the
events table and its checkpoint files, not in Tune. `--resume` reads the last recorded decision
of each model and starts a fresh trial from there; a trial ahead of the record just repeats,
deterministically, what was lost.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import cast

import pandas as pd

from analysis import ObjectPath, ResultsPath, ResultsStore, load_table
from search_spaces import ChoiceDomain
from sweeps._errors import Problem, RunError
from sweeps.panda._babysitter import PandaRules, SitterState
from sweeps.plan import TRIAL_KEY, Progress, babysat_status, trial_id_of, trial_seed
from sweeps.record import trial_row, trials_schema
from sweeps.run import SweepOutcome, open_run, run_best_row
from sweeps.spec import PandaStrategy, Sweep, panda_start_points
from sweeps.tune import build_tuner
from trainables import HYPERPARAMETERS

__all__ = ["checkpoint_dir", "model_configs", "panda_rules", "run_panda", "start_points"]

log = logging.getLogger(__name__)

_FIXED_LR_FLOOR = 1e-12  # a fixed lr has no searched bounds; lowering must still stay > 0


def start_points(sweep: Sweep) -> list[dict[str, object]]:
    """Member 1 starts at `start` (the rest at the space's centre); the others at random points.

    The random points are drawn from the spec's seed, so a resumed run rebuilds the same ones.
    """
    return panda_start_points(_strategy(sweep), sweep.space, sweep.spec.seed)


def panda_rules(sweep: Sweep) -> PandaRules:
    strategy = _strategy(sweep)
    domain = sweep.space.domains.get("lr")
    if domain is None:  # fixed: the hyperparameter's own range
        low, high = _FIXED_LR_FLOOR, float(HYPERPARAMETERS["lr"].high or math.inf)
    elif isinstance(domain, ChoiceDomain):
        # Why the type ignore below: an lr choice: the spec checks its values are numbers
        values = [float(v) for v in domain.values]  # type: ignore[arg-type]
        low, high = min(values), max(values)
    else:
        low, high = float(domain.low), float(domain.high)
    return PandaRules(
        period=strategy.period,
        raise_factor=strategy.raise_factor,
        lower_factor=strategy.lower_factor,
        patience=strategy.patience,
        epochs=sweep.spec.trainable.epochs,
        mode=sweep.spec.objective.resolved_mode,
        lr_low=low,
        lr_high=high,
    )


def checkpoint_dir(store: ResultsStore, run_id: str, trial_id: str) -> ResultsPath:
    """Beside the results (in the bucket for s3:// results, so any node can restore a model);
    absolute, because Ray runs trials in another working directory."""
    return store.layout.panda_checkpoints(run_id, trial_id).resolve()


def run_panda(
    sweep: Sweep,
    results_dir: ResultsPath,
    *,
    address: str | None,
    resume: bool,
    show: Callable[[Progress], None] | None,
    run_id: str | None = None,
) -> SweepOutcome:
    """Babysit `strategy.models` models to the end; nothing is written until Ray is up."""
    from sweeps.panda._record import (
        last_decisions,
        recorded_decisions,
        remove_undecided_epochs,
    )

    configs = model_configs(sweep)
    with open_run(
        sweep, results_dir, address=address, resume=resume, run_id=run_id, planned=len(configs)
    ) as run:
        store, run_id, done = run.store, run.run_id, set(run.choice.done)
        events = recorded_decisions(store, run_id) if resume else pd.DataFrame()
        if resume and remove_undecided_epochs(store, run_id, events):
            log.info("removed epochs files whose decisions were never recorded")
        states = {
            trial_id: SitterState.after(decision)
            for trial_id, decision in last_decisions(events).items()
        }
        todo = {
            trial_id: states.get(trial_id, SitterState(lr=_start_lr(config)))
            for trial_id, config in configs.items()
            if trial_id not in done
        }
        progress = Progress(
            total=sum(1 for state in todo.values() if not state.stopped),
            metric=sweep.spec.objective.metric,
            mode=sweep.spec.objective.resolved_mode,
        )
        errors = _babysit_on_tune(sweep, store, run_id, configs, todo, progress, show)
        finished = _record_trials(
            sweep, store, run_id, configs, todo, errors, run.manifest.started_at
        )
    statuses = list(finished.values())
    if statuses and statuses.count("error") == len(statuses):
        raise RunError([Problem("trials", len(statuses), "every model failed; see `error`")])
    return SweepOutcome(
        run_id=run_id,
        sweep_dir=store.sweep_dir,
        evaluated=len(statuses),
        skipped=len(done),
        errors=statuses.count("error"),
        diverged=statuses.count("diverged"),
        best=run_best_row(sweep, store, run_id),
    )


def _strategy(sweep: Sweep) -> PandaStrategy:
    strategy = sweep.spec.strategy
    if not isinstance(strategy, PandaStrategy):
        raise TypeError(f"not a panda sweep: strategy {strategy.kind!r}")
    return strategy


def _start_lr(config: dict[str, object]) -> float:
    # Searched or fixed, a number: the spec check (`_check_panda`) made sure of both.
    return float(cast(float, config["lr"]))


def model_configs(sweep: Sweep) -> dict[str, dict[str, object]]:
    """Trial id -> the flat trial config of each babysat model (its starting lr included)."""
    return {
        trial_id_of(index): sweep.trial_config(point, trial_seed(sweep.spec.seed, index))
        for index, point in enumerate(start_points(sweep))
    }


def _babysit_on_tune(
    sweep: Sweep,
    store: ResultsStore,
    run_id: str,
    configs: dict[str, dict[str, object]],
    todo: dict[str, SitterState],
    progress: Progress,
    show: Callable[[Progress], None] | None,
) -> dict[str, str]:
    """One Tune trial per unfinished model; returns the error of each model whose trial failed."""

    from sweeps.panda._recorder import PandaRecorder
    from sweeps.panda._trial import PandaJob, panda_trial
    from sweeps.tune import PointsSearcher

    running = {trial_id: state for trial_id, state in todo.items() if not state.stopped}
    if not running:
        return {}
    spec = sweep.spec
    rules = panda_rules(sweep)
    jobs = []
    for trial_id, state in running.items():
        directory = checkpoint_dir(store, run_id, trial_id)
        job = PandaJob(
            trial_id,
            configs[trial_id],
            rules,
            state,
            directory.uri if isinstance(directory, ObjectPath) else str(directory),
            spec.objective.metric,
        )
        jobs.append({**job.to_config(), TRIAL_KEY: trial_id})
    recorded = {trial_id: state.decisions - 1 for trial_id, state in running.items()}
    recorder = PandaRecorder(store, run_id, recorded, progress, show or (lambda p: None))
    tuner = build_tuner(
        spec, store, run_id, panda_trial, PointsSearcher(jobs), len(jobs), [recorder]
    )
    tuner.fit()
    return recorder.errors


def _record_trials(
    sweep: Sweep,
    store: ResultsStore,
    run_id: str,
    configs: dict[str, dict[str, object]],
    todo: dict[str, SitterState],
    errors: dict[str, str],
    started: str,
) -> dict[str, str]:
    """One `trials` row per model that ended, built from what the tables hold; returns statuses.

    Built from the record rather than from memory, so a model that stopped just before a crash
    gets the same row from the resumed run.
    """
    from sweeps.panda._record import last_decisions, recorded_decisions

    events = recorded_decisions(store, run_id)
    decisions = last_decisions(events)
    nodes = {} if events.empty else dict(zip(events["trial_id"], events["node_id"], strict=True))
    epochs = load_table(store.root, "epochs", sweep.name) if todo else pd.DataFrame()
    if not {"run_id", "trial_id"} <= set(epochs.columns):
        epochs = pd.DataFrame(columns=["run_id", "trial_id", "epoch", "abandoned", "epoch_time_s"])
    rows, finals = [], {}
    for index, (trial_id, config) in enumerate(configs.items()):
        decision = decisions.get(trial_id)
        stop = decision if decision is not None and decision.action == "stop" else None
        if trial_id not in todo or (stop is None and trial_id not in errors):
            continue  # recorded before, or interrupted (a resumed run finishes it)
        curve = epochs[(epochs["run_id"] == run_id) & (epochs["trial_id"] == trial_id)]
        kept = curve[~curve["abandoned"].astype(bool)].sort_values("epoch")  # the model's own
        ids = {"sweep": sweep.name, "run_id": run_id, "round": 0, "trial_id": trial_id}
        final = {**config, "lr": decision.lr_after} if decision is not None else config
        row = trial_row(
            ids,
            final,
            kept.to_dict("records"),
            started_at=datetime.fromisoformat(started),
            error=None if stop is not None else errors[trial_id],
            model_columns=sweep.model_columns,
        )
        if stop is not None:
            row["status"] = babysat_status(stop.best_metric)
        row.update(
            config_index=index,
            origin="start" if index == 0 else "random",
            epochs_done=len(curve),  # trained, abandoned epochs included
            duration_s=float(curve["epoch_time_s"].sum()),
            node_id=nodes.get(trial_id),
        )
        rows.append(row)
        finals[trial_id] = (str(row["status"]), None if stop is None else stop.checkpoint)
    store.write("trials", rows, trials_schema(sweep.model_columns), run_id=run_id, round_index=0)
    for trial_id, (_, checkpoint) in finals.items():
        _keep_only(checkpoint_dir(store, run_id, trial_id), checkpoint)
    return {trial_id: status for trial_id, (status, _) in finals.items()}


def _keep_only(directory: ResultsPath, final: str | None) -> None:
    """The babysat model is the run's product; earlier good checkpoints are not needed again."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.name != final:
            path.unlink(missing_ok=True)
