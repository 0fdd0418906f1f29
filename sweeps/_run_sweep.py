"""One sweep, start to finish: `run_sweep` hands it to the driver its strategy's row names.

It sits next to the CLI, above every layer, because the drivers it dispatches to live in the
layers above `run/`: `sweeps.tune.run_on_tune` for trials on Ray Tune (fixed or proposed),
`sweeps.panda.run_panda` and `auto`'s `run_auto`. The lookup itself is `sweeps.run`'s
`strategy_driver`, which `auto` uses too.
"""

from __future__ import annotations

from collections.abc import Callable

from analysis import ResultsPath
from sweeps.plan import Progress
from sweeps.run import SweepOutcome, strategy_driver
from sweeps.spec import Sweep

__all__ = ["run_sweep"]


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
    """
    run = strategy_driver(sweep)
    return run(sweep, results_dir, address=address, resume=resume, show=show, run_id=run_id)
