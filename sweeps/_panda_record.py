"""Panda mode's record: decisions and curves to Parquet as they happen, and read back on resume.

Each period's epochs file is written before its events file, so an event is never visible
without its epochs; a crash between the two leaves epochs whose decision was never recorded,
which `remove_undecided_epochs` deletes before a resumed run repeats that period. The events
table is the babysitter's memory: the last row of each model holds its whole state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from ray import tune
from ray.tune.experiment import Trial

from analysis import ResultsStore, arrow_filesystem, arrow_path, load_table
from sweeps._babysitter import Decision, SitterState
from sweeps._panda_trial import PeriodReport
from sweeps._progress import Progress
from sweeps._record import branch_columns, epoch_row, epochs_schema, events_schema

__all__ = ["PandaRecorder", "recorded_decisions", "remove_undecided_epochs"]

log = logging.getLogger(__name__)


def panda_epochs_schema() -> pa.Schema:
    return pa.schema([*epochs_schema(), *(pa.field(n, t) for n, t in branch_columns())])


def recorded_decisions(store: ResultsStore, run_id: str) -> pd.DataFrame:
    """Every decision row of `run_id`, ordered by model and decision (empty frame: none yet).

    Rows without a model (`auto`'s choice of panda, a re-tune's record) are not decisions.
    """
    if not store.table_dir("events").is_dir():
        return pd.DataFrame()
    events = load_table(store.root, "events", store.sweep)
    if "run_id" not in events.columns:
        return pd.DataFrame()
    events = events[(events["run_id"] == run_id) & events["trial_id"].notna()]
    return events.sort_values(["trial_id", "decision"]).reset_index(drop=True)


def last_decisions(events: pd.DataFrame) -> dict[str, Decision]:
    """The latest recorded decision of each model: where a resumed run picks it up."""
    if events.empty:
        return {}
    last = events.groupby("trial_id").tail(1)
    return {str(row["trial_id"]): decision_from_row(row) for _, row in last.iterrows()}


def decision_from_row(row: pd.Series) -> Decision:
    def number(name: str) -> float | None:
        value = row[name]
        return None if pd.isna(value) else float(value)

    checkpoint = row["checkpoint"]
    return Decision(
        index=int(row["decision"]),
        epoch=int(row["epoch"]),
        epochs_trained=int(row["epochs_trained"]),
        action=row["action"],
        reason=str(row["reason"]),
        metric=number("metric"),
        lr_before=float(row["lr_before"]),
        lr_after=float(row["lr_after"]),
        restored_epoch=int(row["restored_epoch"]),
        best_metric=number("best_metric"),
        rollbacks=int(row["rollbacks"]),
        checkpoint=None if pd.isna(checkpoint) else str(checkpoint),
    )


def remove_undecided_epochs(store: ResultsStore, run_id: str, events: pd.DataFrame) -> int:
    """Delete epochs files of `run_id` holding an epoch whose decision was never recorded."""
    decided = (
        set() if events.empty else set(zip(events["trial_id"], events["decision"], strict=True))
    )
    removed = 0
    for path in sorted((store.table_dir("epochs") / f"run={run_id}").glob("round=*/part-*")):
        table = pq.read_table(
            arrow_path(path), columns=["trial_id", "decision"], filesystem=arrow_filesystem(path)
        )
        pairs = zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True)
        if not set(pairs) <= decided:
            path.unlink()
            removed += 1
    return removed


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
        events = [_event_row(ids, d, node, now) for d in fresh]
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
        text = str(trial.get_error() or "trial failed")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        self.errors[trial.config["caviar_trial_id"]] = lines[-1] if lines else "trial failed"
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


def _event_row(
    ids: dict[str, object], decision: Decision, node: object, now: datetime
) -> dict[str, object]:
    row = {**ids, **asdict(decision)}
    row["decision"] = row.pop("index")
    row["node_id"] = node if isinstance(node, str) else None
    row["recorded_at"] = now
    return row
