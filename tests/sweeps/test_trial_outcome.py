"""One rule for how a trial ended and what it scored, whoever asks: the recorder, the live
searchers, the drivers reading recorded rows."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from sweeps.plan import (
    STATUSES,
    babysat_status,
    ended_by_itself,
    recorded_score,
    reported_score,
    trial_status,
)
from sweeps.record import trial_row

EPOCHS = 4
OK = {"epoch": 4, "val_accuracy": 0.9}
STOPPED = {"epoch": 2, "val_accuracy": 0.8, "stopped": True}
DIVERGED = {"epoch": 3, "val_accuracy": float("nan"), "diverged": True}


@pytest.mark.parametrize(
    ("last", "done", "failed", "status", "score"),
    [
        (OK, 4, False, "ok", 0.9),
        (OK, 2, False, "stopped", 0.9),  # ASHA ended it early without saying so
        (STOPPED, 2, False, "stopped", 0.8),
        (DIVERGED, 3, False, "diverged", None),
        (OK, 2, True, "error", None),  # failed mid-run: its last report is not an outcome
        (STOPPED, 2, True, "stopped", 0.8),  # a pack member stopped before its pack failed
        (DIVERGED, 3, True, "diverged", None),
        (None, 0, True, "error", None),
    ],
)
def test_status_and_scores_agree_everywhere(
    last: dict | None, done: int, failed: bool, status: str, score: float | None
) -> None:
    assert trial_status(last, done, EPOCHS, failed=failed) == status
    assert status in STATUSES
    live = reported_score(last, "val_accuracy", failed=failed)
    assert (live is None) == (score is None)
    if live is not None and score is not None:
        assert math.isclose(live, last["val_accuracy"])
    # The recorder writes that status, and a resumed driver reads the same score back.
    history = [] if last is None else [{"epoch": e} for e in range(1, done)] + [last]
    config = {"epochs": EPOCHS, "seed": 0, "dataset": "digits"}
    ids = {"sweep": "s", "run_id": "r", "round": 0, "trial_id": "t00000"}
    error = "boom" if failed and not ended_by_itself(last) else None  # as ResultsCallback passes
    row = trial_row(ids, config, history, started_at=datetime.now(UTC), error=error)
    assert row["status"] == status
    assert recorded_score(row, "val_accuracy") == live


def test_a_non_finite_or_missing_objective_scores_nothing() -> None:
    assert reported_score({"epoch": 1, "val_loss": float("inf")}, "val_loss", failed=False) is None
    assert reported_score({"epoch": 1}, "val_loss", failed=False) is None
    assert recorded_score({"status": "ok", "val_loss": float("nan")}, "val_loss") is None
    assert recorded_score({"status": "ok", "val_loss": True}, "val_loss") is None


def test_a_babysat_model_is_ok_or_diverged_never_stopped() -> None:
    assert babysat_status(0.91) == "ok"
    assert babysat_status(None) == "diverged"
