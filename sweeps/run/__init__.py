"""The frame of every run: results checked, run chosen or resumed, the Ray session, resources, the
lock, the manifest, SIGTERM, the outcome, and who runs a sweep of each strategy (its driver)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

from sweeps.run._embedded_ray import trial_actors_on_prestarted_workers
from sweeps.run._ray_session import RaySession, prepare_ray_environment, ray_session
from sweeps.run._stop import Terminated, forget_sigterm, install_sigterm_handler, stopped_by_sigterm

if TYPE_CHECKING:
    from sweeps.run._driver import RunStrategy, strategy_driver
    from sweeps.run._lifecycle import cluster, open_run
    from sweeps.run._lock import LockHeldError, hold_lock, refuse_if_locked, sweep_lock
    from sweeps.run._manifests import latest_run, new_run_id
    from sweeps.run._outcome import SweepOutcome, outcome_of, run_best_row
    from sweeps.run._preflight import check_results_dir
    from sweeps.run._resources import check_resources, trial_slots
    from sweeps.run._resume import remove_orphan_epochs

__all__ = [
    "LockHeldError",
    "RaySession",
    "RunStrategy",
    "SweepOutcome",
    "Terminated",
    "check_resources",
    "check_results_dir",
    "cluster",
    "forget_sigterm",
    "hold_lock",
    "install_sigterm_handler",
    "latest_run",
    "new_run_id",
    "open_run",
    "outcome_of",
    "prepare_ray_environment",
    "ray_session",
    "refuse_if_locked",
    "remove_orphan_epochs",
    "run_best_row",
    "stopped_by_sigterm",
    "strategy_driver",
    "sweep_lock",
    "trial_actors_on_prestarted_workers",
    "trial_slots",
]

# Loaded on first use: they import pandas, pyarrow and pydantic, and `caviar --version`, which
# imports the SIGTERM and Ray-environment names above, does without them.
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "_lifecycle": ["cluster", "open_run"],
        "_lock": ["LockHeldError", "hold_lock", "refuse_if_locked", "sweep_lock"],
        "_outcome": ["SweepOutcome", "outcome_of", "run_best_row"],
        "_preflight": ["check_results_dir"],
        "_resources": ["check_resources", "trial_slots"],
        "_resume": ["remove_orphan_epochs"],
        "_manifests": ["latest_run", "new_run_id"],
        "_driver": ["RunStrategy", "strategy_driver"],
    },
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
