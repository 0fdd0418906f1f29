"""The proposer of each adaptive strategy: what turns results into the next points.

The strategy table (`sweeps/spec/_strategy_table.py`) names each adaptive kind's proposer by
"module:attr", so that reading a spec imports none of them; this module loads them, for the
runner (`open_driver`) and for a suite that runs every one (`DRIVERS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, cast

import pandas as pd

from analysis import ResultsStore
from sweeps.plan import Point, Proposer
from sweeps.spec import STRATEGIES, Sweep, resolve, strategy_row

__all__ = ["DRIVERS", "OpenDriver", "open_driver"]


class OpenDriver(Protocol):
    """A proposer's `open`: the proposer that runs (or resumes) `run_id`, given the planned
    points, this run's recorded `trials` rows, and whether the spec was edited since."""

    def __call__(
        self,
        sweep: Sweep,
        store: ResultsStore,
        run_id: str,
        initial: list[Point],
        recorded: pd.DataFrame,
        *,
        edited: bool,
    ) -> Proposer: ...


def _load(reference: str) -> OpenDriver:
    return cast(OpenDriver, resolve(reference))


# Every adaptive kind of the table, its proposer loaded.
DRIVERS: Mapping[str, OpenDriver] = {
    kind: _load(row.proposer) for kind, row in STRATEGIES.items() if row.proposer is not None
}


def open_driver(
    sweep: Sweep,
    store: ResultsStore,
    run_id: str,
    points: list[Point],
    recorded: pd.DataFrame,
    *,
    edited: bool,
) -> Proposer:
    """The proposer that runs (or resumes) `run_id` of an adaptive sweep."""
    reference = strategy_row(sweep.spec.strategy).proposer
    if reference is None:
        raise ValueError(f"strategy {sweep.spec.strategy.kind!r} proposes nothing: not adaptive")
    return _load(reference)(sweep, store, run_id, points, recorded, edited=edited)
