"""The driver of each adaptive strategy, by `kind`: what turns results into the next points.

`_strategies` says whether a strategy is adaptive; this registry says who drives it. The two
cannot share a module: the spec's checks import `_strategies`, and the drivers import the spec.
`tests/sweeps/test_strategies.py` checks that every adaptive kind has a driver here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

from analysis import ResultsStore
from sweeps.spec._spec import Sweep
from sweeps.strategies._coarse_driver import CoarseToFineProposer
from sweeps.strategies._points import Point
from sweeps.strategies._proposer import Proposer
from sweeps.strategies._tpe_driver import TpeProposer

__all__ = ["DRIVERS", "OpenDriver", "open_driver"]

OpenDriver = Callable[[Sweep, ResultsStore, str, list[Point], pd.DataFrame, bool], Proposer]
"""(sweep, store, run_id, planned points, this run's recorded `trials` rows, spec edited since)."""


def _tpe(
    sweep: Sweep,
    store: ResultsStore,
    run_id: str,
    points: list[Point],
    recorded: pd.DataFrame,
    edited: bool,
) -> Proposer:
    return TpeProposer(sweep, points, recorded)


def _coarse_to_fine(
    sweep: Sweep,
    store: ResultsStore,
    run_id: str,
    points: list[Point],
    recorded: pd.DataFrame,
    edited: bool,
) -> Proposer:
    return CoarseToFineProposer.open(sweep, store, run_id, points, recorded, edited=edited)


DRIVERS: Mapping[str, OpenDriver] = {"tpe": _tpe, "coarse_to_fine": _coarse_to_fine}


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
    return DRIVERS[kind](sweep, store, run_id, points, recorded, edited)
