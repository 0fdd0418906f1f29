"""One sweep, start to finish: `run_sweep` hands it to the driver its strategy's row names
(`sweeps.tune._run_on_tune.run_on_tune` for trials on Ray Tune, fixed or proposed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

from analysis import ResultsPath
from sweeps.plan import Progress
from sweeps.run._outcome import SweepOutcome
from sweeps.spec import Sweep, resolve, strategy_row

__all__ = ["RunStrategy", "run_sweep"]


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


def run_sweep(
    sweep: Sweep,
    results_dir: ResultsPath,
    *,
    address: str | None = None,
    resume: bool = False,
    show: Callable[[Progress], None] | None = None,
    run_id: str | None = None,
) -> SweepOutcome:
    """Nothing is written until Ray is up and the resources are known to fit.

    `run_id` names a fresh run (`auto` decides before the run starts and records under it).
    The strategy's row says who runs it: its trials on Ray Tune
    (`sweeps.tune._run_on_tune.run_on_tune`), or its own loop.
    """
    run = cast(RunStrategy, resolve(strategy_row(sweep.spec.strategy).driver))
    return run(sweep, results_dir, address=address, resume=resume, show=show, run_id=run_id)
