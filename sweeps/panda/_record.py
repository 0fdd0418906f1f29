"""Panda mode's record: the Parquet rows of decisions and curves, and reading them back on resume.

No Ray here: this module is imported before Ray's environment is prepared, and Ray reads its
auth settings when it is first imported. The callback that writes the record as periods
arrive is the Ray adapter `sweeps.panda._recorder`.

Each period's epochs file is written before its events file, so an event is never visible
without its epochs; a crash between the two leaves epochs whose decision was never recorded,
which `remove_undecided_epochs` deletes before a resumed run repeats that period. The events
table is the babysitter's memory: the last row of each model holds its whole state.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import ResultsStore, arrow_filesystem, arrow_path, load_table
from sweeps.panda._babysitter import Decision
from sweeps.record import PANDA_EVENT, branch_columns, epochs_schema

__all__ = [
    "decision_from_row",
    "event_row",
    "last_decisions",
    "panda_epochs_schema",
    "recorded_decisions",
    "remove_undecided_epochs",
]


def panda_epochs_schema() -> pa.Schema:
    return pa.schema([*epochs_schema(), *(pa.field(n, t) for n, t in branch_columns())])


def recorded_decisions(store: ResultsStore, run_id: str) -> pd.DataFrame:
    """Every decision row of `run_id`, ordered by model and decision (empty frame: none yet).

    Rows of other kinds (`auto`'s choice of panda, a re-tune's record) are not decisions;
    rows written before `events` had a `kind` are told apart by having a model.
    """
    if not store.table_dir("events").is_dir():
        return pd.DataFrame()
    events = load_table(store.root, "events", store.sweep)
    if "run_id" not in events.columns:
        return pd.DataFrame()
    kind = events["kind"] if "kind" in events.columns else pd.Series(None, index=events.index)
    decisions = kind.eq(PANDA_EVENT) | (kind.isna() & events["trial_id"].notna())
    events = events[(events["run_id"] == run_id) & decisions]
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
    for path in store.parts("epochs", run_id):
        table = pq.read_table(
            arrow_path(path), columns=["trial_id", "decision"], filesystem=arrow_filesystem(path)
        )
        pairs = zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True)
        if not set(pairs) <= decided:
            path.unlink()
            removed += 1
    return removed


def event_row(
    ids: dict[str, object], decision: Decision, node: object, now: datetime
) -> dict[str, object]:
    row = {**ids, "kind": PANDA_EVENT, **asdict(decision)}
    row["decision"] = row.pop("index")
    row["node_id"] = node if isinstance(node, str) else None
    row["recorded_at"] = now
    return row
