"""`caviar retune`: a periodic, warm-started re-tune that is safe to run from cron.

Order matters for the guarantees in docs/retune.md: the re-tune lock and the sweep's run lock
are taken before anything else (an overlapping run leaves at once, exit 75, without starting
Ray); the trials are recorded as a run of their own; the `events` row and then `best.json` are
written only after every trial has been recorded, so a re-tune that fails anywhere leaves the
current best as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import ObjectPath, ResultsPath, ResultsStore, SweepLayout, load_table, load_trials
from sweeps._errors import Problem, RunError, SpecError
from sweeps.plan import Point, Progress
from sweeps.record import RETUNE_EVENT, best_row, ok_history, read_best, record_from_row, write_best
from sweeps.retune._retune_plan import (
    INCUMBENT,
    Judgement,
    full_budget,
    judge,
    plan_retune,
    resolve_budget,
)
from sweeps.run import LockHeldError, check_results_dir, hold_lock, new_run_id, sweep_lock
from sweeps.spec import RetuneSpec, Sweep, strategy_row
from trainables import dataset_fingerprint, load_dataset

__all__ = [
    "RetuneBusyError",
    "RetuneOutcome",
    "check_retune_results",
    "retune_events_schema",
    "retune_lock",
    "run_retune",
]

log = logging.getLogger(__name__)

EX_TEMPFAIL = 75  # sysexits.h: "try again later"; cron wrappers know it


class RetuneBusyError(LockHeldError):
    """Another re-tune (or run) of the sweep holds its lock: not an error, try again later."""

    exit_code = EX_TEMPFAIL


@dataclass(frozen=True, kw_only=True)
class RetunePoint(Point):
    """A planned point that may carry its own seed: the incumbent is re-run with the seed it
    was chosen with, so on unchanged data it reproduces its score and any change is the data's."""

    seed: int | None = None


@dataclass(frozen=True)
class RetuneOutcome:
    run_id: str
    event: dict[str, Any]  # the `events` row written
    record: dict[str, Any]  # the new best.json
    best_path: ResultsPath


def check_retune_results(results_dir: ResultsPath) -> None:
    """Re-tunes are run by cron and may overlap; only a local lock file keeps them apart, and an
    object store has none, so a re-tune needs a local results directory."""
    if isinstance(results_dir, ObjectPath):
        message = "a re-tune needs a local results directory for its lock (object stores have none)"
        raise SpecError([Problem("results", str(results_dir), message)])


@contextlib.contextmanager
def retune_lock(sweep_dir: Path) -> Iterator[None]:
    """`<sweep>/.retune.lock` for the whole re-tune, and the sweep's run lock inside it: a
    `caviar run` in progress also means "try later", and no `caviar run` starts while a
    re-tune writes. Either lock held elsewhere is a `RetuneBusyError` (exit 75)."""
    with contextlib.ExitStack() as locks:
        try:
            locks.enter_context(
                hold_lock(sweep_dir, SweepLayout.RETUNE_LOCK, "another re-tune of this sweep")
            )
            locks.enter_context(sweep_lock(sweep_dir))
        except LockHeldError as exc:
            raise RetuneBusyError(exc.problems, exc.holder) from None
        yield


def run_retune(
    sweep: Sweep,
    results_dir: ResultsPath,
    *,
    address: str | None = None,
    show: Callable[[Progress], None] | None = None,
) -> RetuneOutcome:
    """Re-evaluate the incumbent, search around history's good region, record, decide."""
    from sweeps.run import cluster, trial_slots
    from sweeps.tune import run_trials

    refusal = strategy_row(sweep.spec.strategy).refuses_retune
    if refusal is not None:
        raise SpecError([Problem("strategy.kind", sweep.spec.strategy.kind, refusal)])
    check_retune_results(results_dir)
    local_results = Path(str(results_dir))  # a re-tune's results are local: checked just above
    check_results_dir(results_dir)
    store = ResultsStore(results_dir, sweep.name)
    sweep_dir = Path(str(store.sweep_dir))  # local: refused above otherwise
    with retune_lock(sweep_dir):
        settings = sweep.spec.retune or RetuneSpec()
        history = ok_history(sweep, results_dir)
        incumbent = _incumbent(sweep, local_results, history)
        budget = resolve_budget(settings, full_budget(sweep.spec, sweep.space))
        earlier = _retune_events(store)
        metric, mode = sweep.spec.objective.metric, sweep.spec.objective.resolved_mode
        rng = np.random.default_rng(np.random.SeedSequence([sweep.spec.seed, len(earlier) + 1]))
        plan = plan_retune(
            sweep.space, incumbent.params, history, settings, budget, rng, metric=metric, mode=mode
        )
        points = [
            RetunePoint(i, params, origin, seed=incumbent.seed if origin == INCUMBENT else None)
            for i, (params, origin) in enumerate(plan)
        ]
        fingerprint = _fingerprint(sweep)
        run_id = new_run_id()
        log.info("re-tune %s: %d trials (incumbent %s from run %s, %s = %.4f then)",
                 run_id, len(points), incumbent.trial_id, incumbent.run_id, metric,
                 incumbent.score)  # fmt: skip
        with cluster(sweep, address) as session:
            slots = trial_slots(sweep, session)
            outcome = run_trials(
                sweep, store, run_id, points, show=show, parallel_trials=slots,
                gpus=session.gpus, cpus=session.cpus,
            )  # fmt: skip
        rows = _run_rows(sweep, local_results, run_id)
        event = _decide(sweep, settings, incumbent, rows, run_id, fingerprint, outcome.errors)
        _write_event(store, event)
        if event["action"] == "failed":
            problem = Problem("trials", outcome.errors, "no re-tune trial succeeded; see `error`")
            raise RunError([problem])
        record = _new_record(sweep, incumbent, rows, event, fingerprint)
        path = write_best(results_dir, sweep, record)
    return RetuneOutcome(run_id, event, record, path)


@dataclass(frozen=True)
class _Incumbent:
    params: dict[str, Any]
    score: float  # when it was chosen: the baseline drift is measured against
    run_id: str
    trial_id: str
    seed: int | None
    record: dict[str, Any] | None  # best.json, when one exists


def _incumbent(sweep: Sweep, results_dir: Path, history: pd.DataFrame) -> _Incumbent:
    record = read_best(sweep, results_dir)
    if record is not None:
        return _Incumbent(
            dict(record["params"]), float(record["score"]), str(record["run_id"]),
            str(record["trial_id"]), record.get("seed"), record,
        )  # fmt: skip
    row = best_row(sweep, history)
    if row is None:
        message = "no recorded `ok` trial to warm-start from; run `caviar run SPEC` first"
        raise SpecError([Problem("sweep", sweep.name, message)])
    seed = row.get("seed")
    return _Incumbent(
        {name: row.get(name) for name in sweep.space.names},
        float(row[sweep.spec.objective.metric]),
        str(row["run_id"]),
        str(row["trial_id"]),
        None if seed is None or pd.isna(seed) else int(seed),
        None,
    )


def _fingerprint(sweep: Sweep) -> str:
    """The data at the sweep's seed (a generated dataset is drawn per seed, so trials of other
    seeds see other draws of the same distribution)."""
    t = sweep.spec.trainable
    if t.function is not None:
        return ""  # a training function loads its own data; caviar cannot see it
    version = "" if t.data_version is None else str(t.data_version)
    data = load_dataset(
        sweep.dataset, seed=sweep.spec.seed, val_fraction=t.val_fraction,
        data_version=version,
    )  # fmt: skip
    return dataset_fingerprint(data)


def _run_rows(sweep: Sweep, results_dir: Path, run_id: str) -> pd.DataFrame:
    trials = load_trials(results_dir, sweep.name)
    return trials[trials["run_id"] == run_id].reset_index(drop=True)


def _decide(
    sweep: Sweep,
    settings: RetuneSpec,
    incumbent: _Incumbent,
    rows: pd.DataFrame,
    run_id: str,
    fingerprint: str,
    errors: int,
) -> dict[str, Any]:
    metric, mode = sweep.spec.objective.metric, sweep.spec.objective.resolved_mode
    ok = rows[(rows["status"] == "ok") & np.isfinite(pd.to_numeric(rows[metric], errors="coerce"))]
    again = ok[ok["origin"] == INCUMBENT]
    now = float(again[metric].iloc[0]) if not again.empty else None
    best = best_row(sweep, ok)
    event: dict[str, Any] = {
        "sweep": sweep.name,
        "run_id": run_id,
        "round": 0,
        "kind": RETUNE_EVENT,
        "data_version": _version(sweep),
        "data_fingerprint": fingerprint,
        "incumbent_run_id": incumbent.run_id,
        "incumbent_trial_id": incumbent.trial_id,
        "incumbent_params": json.dumps(incumbent.params, default=_json_default),
        "incumbent_score_then": incumbent.score,
        "incumbent_score_now": now,
        "drift_threshold": settings.drift_threshold,
        "trials": len(rows),
        "errors": errors,
        "recorded_at": datetime.now(UTC),
    }
    if best is None:
        reason = "no trial of this re-tune succeeded; best.json left as it was"
        return {**event, "action": "failed", "drift": None, "drift_drop": None, "reason": reason}
    verdict: Judgement = judge(
        incumbent.score, now, float(best[metric]), best["origin"] == INCUMBENT, mode=mode,
        drift_threshold=settings.drift_threshold, min_improvement=settings.min_improvement,
    )  # fmt: skip
    chosen = again.iloc[0].to_dict() if verdict.keep else best
    return {
        **event,
        "drift": verdict.drift,
        "drift_drop": None if not np.isfinite(verdict.drop) else verdict.drop,
        "action": "kept" if verdict.keep else "replaced",
        "reason": _reason(verdict, now, best, metric),
        "best_trial_id": str(chosen["trial_id"]),
        "best_params": json.dumps(
            {n: chosen.get(n) for n in sweep.space.names}, default=_json_default
        ),
        "best_score": float(chosen[metric]),
    }


def _reason(verdict: Judgement, now: float | None, best: dict[str, Any], metric: str) -> str:
    drift = "drift" if verdict.drift else "no drift"
    if now is None:
        return f"{drift}: the incumbent failed on today's data; {best['trial_id']} replaces it"
    if verdict.keep:
        return f"{drift}: no newcomer beat the incumbent's {metric} today by the margin"
    return f"{drift}: {best['trial_id']} beat the incumbent's {metric} today ({now:.4g})"


def _new_record(
    sweep: Sweep,
    incumbent: _Incumbent,
    rows: pd.DataFrame,
    event: dict[str, Any],
    fingerprint: str,
) -> dict[str, Any]:
    """Kept without drift: the same record and baseline, with a fresh check on today's data
    (its version and fingerprint). Otherwise (the first record, a drift, a newcomer) the choice
    is made on today's data, and today's score becomes the baseline that later drift is
    measured against."""
    check = {
        "run_id": event["run_id"],
        "at": event["recorded_at"].isoformat(),
        "incumbent_score_now": event["incumbent_score_now"],
        "drift": event["drift"],
        "action": event["action"],
    }
    if event["action"] == "kept" and not event["drift"] and incumbent.record is not None:
        # Checked on today's data: the record names that data (a rewritten file's new version).
        today = {"data_version": event["data_version"], "data_fingerprint": fingerprint}
        return {**incumbent.record, **today, "last_retune": check}
    chosen = rows[rows["trial_id"] == event["best_trial_id"]].iloc[0].to_dict()
    return record_from_row(
        sweep, chosen, chosen_at=check["at"], data_fingerprint=fingerprint, last_retune=check
    )


def retune_events_schema() -> pa.Schema:
    """One `events` row per re-tune (kind "retune"); names chosen not to clash with other
    kinds' columns (the table's schema is shared and only grows)."""
    text, num, time = pa.string(), pa.float64(), pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("sweep", text), ("run_id", text), ("round", pa.int32()), ("kind", text),
            ("data_version", text), ("data_fingerprint", text),
            ("incumbent_run_id", text), ("incumbent_trial_id", text), ("incumbent_params", text),
            ("incumbent_score_then", num), ("incumbent_score_now", num),
            ("drift_drop", num), ("drift_threshold", num), ("drift", pa.bool_()),
            ("action", text), ("reason", text),
            ("best_trial_id", text), ("best_params", text), ("best_score", num),
            ("trials", pa.int64()), ("errors", pa.int64()), ("recorded_at", time),
        ]
    )  # fmt: skip


def _write_event(store: ResultsStore, event: dict[str, Any]) -> None:
    store.write("events", [event], retune_events_schema(), run_id=event["run_id"], round_index=0)


def _retune_events(store: ResultsStore) -> pd.DataFrame:
    if not store.table_dir("events").is_dir():
        return pd.DataFrame()
    events = load_table(store.root, "events", store.sweep)
    if "kind" not in events.columns:
        return pd.DataFrame()
    return events[events["kind"] == RETUNE_EVENT].reset_index(drop=True)


def _version(sweep: Sweep) -> str | None:
    version = sweep.spec.trainable.data_version
    return None if version is None else str(version)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
