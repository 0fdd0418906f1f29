"""Orchestration: sweep specs, Ray Tune wiring, the `caviar` CLI. The only package that imports
`search_spaces`, `trainables` and `analysis`.

Only the errors load with the package; the rest load on first access (PEP 562), so that
`caviar --version` imports none of them and each command imports what it uses: a command that
trains nothing never imports torch or Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweeps._errors import CaviarError, Problem, RunError, SpecError

if TYPE_CHECKING:
    from sweeps.plan import Origin, PlannedPoint, Point, Proposer
    from sweeps.run import SweepOutcome, run_sweep
    from sweeps.spec import Sweep, load_spec, parse_spec, plan_points
    from sweeps.tune import DRIVERS

__all__ = [
    "DRIVERS",
    "CaviarError",
    "Origin",
    "PlannedPoint",
    "Point",
    "Problem",
    "Proposer",
    "RunError",
    "SpecError",
    "Sweep",
    "SweepOutcome",
    "load_spec",
    "parse_spec",
    "plan_points",
    "run_sweep",
]

_LAZY = {
    "SweepOutcome": "sweeps.run",
    "run_sweep": "sweeps.run",
    **dict.fromkeys(("Sweep", "load_spec", "parse_spec", "plan_points"), "sweeps.spec"),
    **dict.fromkeys(("Origin", "Point", "PlannedPoint"), "sweeps.plan"),
    # the adaptive strategies' drivers and the interface they implement (a contract suite,
    # tests/sweeps/test_proposer_contract.py, runs every one)
    "DRIVERS": "sweeps.tune",
    "Proposer": "sweeps.plan",
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
