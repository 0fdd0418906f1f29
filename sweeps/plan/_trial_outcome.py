"""How a trial ended and what it scored, read from its last report: the one rule that the
recorder (`trials` rows), the searchers (live results) and the drivers (recorded rows on resume)
all apply, so that a configuration counts the same everywhere.

- `error`: the trial failed (an exception, a lost worker) before ending by itself;
- `diverged`: its loss became non-finite; it scores nothing;
- `stopped`: early stopping (ASHA, or a pack's halving) ended it before its epoch budget;
- `ok`: it trained every epoch.

A pack member that diverged or was stopped before its pack failed keeps that outcome: it had
ended already.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, get_args

__all__ = [
    "SCORED",
    "STATUSES",
    "Status",
    "babysat_status",
    "ended_by_itself",
    "recorded_score",
    "reported_score",
    "trial_status",
]

Status = Literal["ok", "stopped", "diverged", "error"]
STATUSES: tuple[Status, ...] = get_args(Status)
SCORED: tuple[Status, ...] = ("ok", "stopped")  # the statuses whose objective counts


def ended_by_itself(last: Mapping[str, object] | None) -> bool:
    """Whether the last report says the trial was over (diverged, or stopped early)."""
    return bool(last and (last.get("diverged") or last.get("stopped")))


def trial_status(
    last: Mapping[str, object] | None, epochs_done: int, epochs: object, *, failed: bool
) -> Status:
    """The `status` column of a trial whose last report is `last`."""
    if failed and not ended_by_itself(last):
        return "error"
    if last and last.get("diverged"):
        return "diverged"
    if isinstance(epochs, int) and 0 < epochs_done < epochs:
        return "stopped"
    return "ok"


def babysat_status(best_metric: float | None) -> Status:
    """A babysat (panda) model ends by its own `stop` decision, however many epochs it had
    left: `ok` with a finite best, `diverged` without one; never `stopped`, which means early
    stopping cut a sampled configuration short."""
    return "ok" if best_metric is not None else "diverged"


def reported_score(
    last: Mapping[str, object] | None, objective: str, *, failed: bool
) -> float | None:
    """The objective a searcher learns from a trial's last report; None when it has none."""
    if not last or (failed and not ended_by_itself(last)) or last.get("diverged"):
        return None
    return _finite(last.get(objective))


def recorded_score(row: Mapping[str, object], objective: str) -> float | None:
    """The objective of a recorded `trials` row; None for a failed or diverged trial."""
    if row.get("status") not in SCORED:
        return None
    return _finite(row.get(objective))


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
