"""The frame of every run: results checked, run chosen or resumed, the Ray session, resources, the
lock, the manifest, SIGTERM, and the outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweeps.run._ray_session import RaySession, prepare_ray_environment, ray_session
from sweeps.run._stop import Terminated, forget_sigterm, install_sigterm_handler, stopped_by_sigterm

if TYPE_CHECKING:
    from sweeps.run._lifecycle import cluster, open_run
    from sweeps.run._lock import LockHeldError, hold_lock, refuse_if_locked, sweep_lock
    from sweeps.run._outcome import SweepOutcome, outcome_of, run_best_row
    from sweeps.run._preflight import check_results_dir
    from sweeps.run._resources import check_resources, trial_slots
    from sweeps.run._resume import remove_orphan_epochs
    from sweeps.run._runner import run_sweep
    from sweeps.run._runs import latest_run, new_run_id

__all__ = [
    "LockHeldError",
    "RaySession",
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
    "run_sweep",
    "stopped_by_sigterm",
    "sweep_lock",
    "trial_slots",
]

# Loaded on first use: they import pandas, pyarrow and pydantic, and `caviar --version`, which
# imports the SIGTERM and Ray-environment names above, does without them.
_LAZY = {
    **dict.fromkeys(("cluster", "open_run"), "sweeps.run._lifecycle"),
    **dict.fromkeys(
        ("LockHeldError", "hold_lock", "refuse_if_locked", "sweep_lock"), "sweeps.run._lock"
    ),
    **dict.fromkeys(("SweepOutcome", "outcome_of", "run_best_row"), "sweeps.run._outcome"),
    **dict.fromkeys(("check_results_dir",), "sweeps.run._preflight"),
    **dict.fromkeys(("check_resources", "trial_slots"), "sweeps.run._resources"),
    **dict.fromkeys(("remove_orphan_epochs",), "sweeps.run._resume"),
    **dict.fromkeys(("run_sweep",), "sweeps.run._runner"),
    **dict.fromkeys(("latest_run", "new_run_id"), "sweeps.run._runs"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
