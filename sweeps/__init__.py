"""Orchestration: sweep specs, Ray Tune wiring, the `caviar` CLI. The only package that imports
`search_spaces`, `trainables` and `analysis`."""

from sweeps._errors import CaviarError, Problem, RunError, SpecError
from sweeps.run._outcome import SweepOutcome
from sweeps.run._runner import run_sweep
from sweeps.spec._spec import Sweep, load_spec, parse_spec
from sweeps.strategies._points import Origin, Point, plan_points

__all__ = [
    "CaviarError",
    "Origin",
    "Point",
    "Problem",
    "RunError",
    "SpecError",
    "Sweep",
    "SweepOutcome",
    "load_spec",
    "parse_spec",
    "plan_points",
    "run_sweep",
]
