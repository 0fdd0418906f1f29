"""The driver-side Ray Tune callback of panda mode: each period's epochs and decisions go to
Parquet as they arrive (rows built by `sweeps.panda._record`), once each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from ray import tune
from ray.tune.experiment import Trial

from analysis import ResultsStore
from sweeps.panda._babysitter import Decision, SitterState
from sweeps.panda._record import event_row, panda_epochs_schema
from sweeps.panda._trial import PeriodReport
from sweeps.plan import TRIAL_KEY, Progress
from sweeps.record import epoch_row, events_schema
from sweeps.tune import trial_error_message

__all__ = ["PandaRecorder"]

log = logging.getLogger(__name__)


class PandaRecorder(tune.Callback):
    """Writes each period's epochs and decisions from the driver, once each.

    A decision already recorded (a restarted trial repeating its last period) is skipped, so
    `decision` is unique per model whatever Ray retries.
    """

    def __init__(
        self,
        store: ResultsStore,
        run_id: str,
        recorded: dict[str, int],
        progress: Progress,
        show: Callable[[Progress], None],
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._recorded = dict(recorded)  # trial id -> index of its last recorded decision
        self._progress = progress
        self._show = show
        self.errors: dict[str, str] = {}

    def _ids(self, trial_id: str) -> dict[str, object]:
        return {
            "sweep": self._store.sweep,
            "run_id": self._run_id,
            "round": 0,
            "trial_id": trial_id,
        }

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        period = PeriodReport.from_metrics(result)
        last = self._recorded.get(period.trial_id, -1)
        fresh = [d for d in period.decisions if d.index > last]
        if not fresh:
            return
        ids = self._ids(period.trial_id)
        if period.decisions[0].index > last:  # the curve belongs to the period's judgement
            rows = []
            for point in period.curve:
                row = epoch_row(ids, point)
                row.update(
                    epoch_time_s=point["epoch_time_s"],
                    decision=point["decision"],
                    abandoned=point["abandoned"],
                )
                rows.append(row)
            self._write("epochs", rows, panda_epochs_schema())
        now = datetime.now(UTC)
        node = result.get("node_id")
        events = [event_row(ids, d, node, now) for d in fresh]
        self._write("events", events, events_schema())
        self._recorded[period.trial_id] = fresh[-1].index
        self._announce(period.trial_id, fresh, SitterState.after(fresh[-1]))

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._progress.running += 1
        self._show(self._progress)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.errors[trial.config[TRIAL_KEY]] = trial_error_message(trial)
        p = self._progress
        p.running, p.done, p.errors = max(p.running - 1, 0), p.done + 1, p.errors + 1
        self._show(p)

    def _write(self, table: str, rows: list[dict[str, object]], schema: pa.Schema) -> None:
        self._store.write(table, rows, schema, run_id=self._run_id, round_index=0)

    def _announce(self, trial_id: str, decisions: list[Decision], state: SitterState) -> None:
        p = self._progress
        for decision in decisions:
            line = f"{trial_id} {decision.describe(p.metric)}"
            log.info("%s", line)
            p.label = line
        if state.good_metric is not None:
            p.consider(trial_id, state.good_metric, {"lr": state.lr})
        if state.stopped:
            p.running, p.done = max(p.running - 1, 0), p.done + 1
            if state.good_metric is None:
                p.diverged += 1
        self._show(p)
