"""`events` is one table for several kinds of record: every row says its `kind`, and panda's
resume reads only decisions, from runs written before the column existed too."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from analysis import ResultsStore, load_table
from sweeps.panda._babysitter import Decision
from sweeps.panda._record import event_row, recorded_decisions
from sweeps.record._record import EVENT_KINDS, events_schema
from sweeps.retune._retune import retune_events_schema


def _decision(index: int) -> Decision:
    return Decision(
        index=index, epoch=2 * index, epochs_trained=2 * index, action="keep", reason="improved",
        metric=0.9, lr_before=0.1, lr_after=0.1, restored_epoch=2 * index, best_metric=0.9,
        rollbacks=0, checkpoint=None,
    )  # fmt: skip


def test_panda_reads_its_decisions_among_other_kinds_and_older_rows(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "s")
    now = datetime.now(UTC)
    ids = {"sweep": "s", "run_id": "r1", "round": 0, "trial_id": "t00000"}
    schema = events_schema()
    # A run recorded before `kind` existed: its rows lack the column.
    old_schema = pa.schema([f for f in schema if f.name != "kind"])
    old = {k: v for k, v in event_row(ids, _decision(0), None, now).items() if k != "kind"}
    store.write("events", [old], old_schema, run_id="r1", round_index=0)
    store.write(
        "events", [event_row(ids, _decision(1), None, now)], schema, run_id="r1", round_index=0
    )
    auto = {"sweep": "s", "run_id": "r1", "round": 0, "kind": "auto", "action": "auto:panda",
            "reason": "one slot", "recorded_at": now}  # fmt: skip
    store.write("events", [auto], schema, run_id="r1", round_index=0)
    retune = {"sweep": "s", "run_id": "r1", "round": 0, "kind": "retune", "action": "kept",
              "recorded_at": now}  # fmt: skip
    store.write("events", [retune], retune_events_schema(), run_id="r1", round_index=0)

    events = load_table(tmp_path, "events", "s")
    assert sorted(events["kind"].dropna()) == ["auto", "panda", "retune"]
    assert set(events["kind"].dropna()) <= set(EVENT_KINDS)
    decisions = recorded_decisions(store, "r1")
    assert decisions["decision"].tolist() == [0, 1]
    assert set(decisions["action"]) == {"keep"}
