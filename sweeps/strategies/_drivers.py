"""The driver of each adaptive strategy, by `kind`: what turns results into the next points.

`_strategies` says whether a strategy is adaptive; this registry says who drives it. The two
cannot share a module: the spec's checks import `_strategies`, and the drivers import the spec.
`tests/sweeps/test_strategies.py` checks that every adaptive kind has a driver here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import pandas as pd

from analysis import ResultsStore
from sweeps.spec._spec import Sweep
from sweeps.strategies._coarse_driver import CoarseToFineProposer
from sweeps.strategies._points import Point
from sweeps.strategies._proposer import Proposer
from sweeps.strategies._tpe_driver import TpeProposer

__all__ = ["DRIVERS", "OpenDriver", "open_driver"]


class OpenDriver(Protocol):
    """A driver's `open`: the proposer that runs (or resumes) `run_id`, given the planned
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


DRIVERS: Mapping[str, OpenDriver] = {
    "tpe": TpeProposer.open,
    "coarse_to_fine": CoarseToFineProposer.open,
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
    kind = sweep.spec.strategy.kind
    if kind not in DRIVERS:
        raise ValueError(f"strategy {kind!r} is adaptive but has no driver in DRIVERS")
    return DRIVERS[kind](sweep, store, run_id, points, recorded, edited=edited)
