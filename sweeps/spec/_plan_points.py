"""The configurations a sweep evaluates, in order: `initial` first, then the strategy's points.

Points are a pure function of the spec (seeded), so a resumed run regenerates the same list and
can skip the ones already recorded.
"""

from __future__ import annotations

from sweeps.plan import Point
from sweeps.spec._spec import Sweep
from sweeps.spec._strategy_table import behaviour

__all__ = ["plan_points", "preview_points"]


def plan_points(sweep: Sweep) -> list[Point]:
    """The points known before anything runs; adaptive strategies add theirs as results come."""
    spec = sweep.spec
    points = [Point(i, dict(cfg), "initial") for i, cfg in enumerate(spec.initial)]
    strategy = spec.strategy
    drawn = behaviour(strategy).fixed_points(strategy, sweep.space, spec.seed)
    start = len(points)
    points += [Point(start + i, params, strategy.kind) for i, params in enumerate(drawn)]
    return points


def preview_points(sweep: Sweep) -> list[Point]:
    """`plan_points` plus the first batch an adaptive strategy will propose: it depends on
    nothing run yet (coarse-to-fine's round 1), so it can be shown, and packed, exactly."""
    points = plan_points(sweep)
    spec = sweep.spec
    preview = behaviour(spec.strategy).preview(
        spec.strategy, sweep.space, spec.seed, spec.objective.resolved_mode
    )
    start = len(points)
    return points + [Point(start + i, c, spec.strategy.kind) for i, c in enumerate(preview)]
