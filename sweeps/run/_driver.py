"""Who runs a sweep of a given strategy: the `driver` its row in the strategy table names.

The row names it as "module:attr" so that reading a spec imports no Ray; this module loads it
and gives it its type. `sweeps.run_sweep` (next to the CLI) and `auto`, which hands the
strategy it decided on to that strategy's driver, are the two callers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

from analysis import ResultsPath
from sweeps.plan import Progress
from sweeps.run._outcome import SweepOutcome
from sweeps.spec import Sweep, resolve, strategy_row

__all__ = ["RunStrategy", "strategy_driver"]


class RunStrategy(Protocol):
    """How a sweep of one kind runs (a row's `driver` in the strategy table): `run_sweep`'s
    arguments, all of them given."""

    def __call__(
        self,
        sweep: Sweep,
        results_dir: ResultsPath,
        *,
        address: str | None,
        resume: bool,
        show: Callable[[Progress], None] | None,
        run_id: str | None,
    ) -> SweepOutcome: ...


def strategy_driver(sweep: Sweep) -> RunStrategy:
    """The function that runs `sweep`, as its strategy's row names it, imported now."""
    return cast(RunStrategy, resolve(strategy_row(sweep.spec.strategy).driver))
