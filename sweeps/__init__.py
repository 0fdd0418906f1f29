"""Orchestration: sweep specs, Ray Tune wiring, the `caviar` CLI. The only package that imports
`search_spaces`, `trainables` and `analysis`.

Only the errors load with the package; the rest load on first access (PEP 562), so that
`caviar --version` imports none of them and each command imports what it uses: a command that
trains nothing never imports torch or Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

from sweeps._errors import CaviarError, Problem, RunError, SpecError

if TYPE_CHECKING:
    from sweeps._run_sweep import run_sweep
    from sweeps.plan import Origin, PlannedPoint, Point, Proposer
    from sweeps.run import SweepOutcome
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

__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "run": ["SweepOutcome"],
        "spec": ["Sweep", "load_spec", "parse_spec", "plan_points"],
        "plan": ["Origin", "PlannedPoint", "Point", "Proposer"],
        "tune": ["DRIVERS"],
        "_run_sweep": ["run_sweep"],
    },
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
