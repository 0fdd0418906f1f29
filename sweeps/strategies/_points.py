"""The configurations a sweep evaluates, in order: `initial` first, then the strategy's points.

Points are a pure function of the spec (seeded), so a resumed run regenerates the same list and
can skip the ones already recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweeps.spec._spec import Sweep
from sweeps.spec._strategy_table import behaviour

__all__ = ["Origin", "Point", "plan_points", "preview_points", "trial_seed"]

# Where a trial's configuration came from (the `origin` column of `trials`): "initial" for the
# spec's `initial` list; the strategy's kind (a key of the strategy table) for its own points;
# panda's "start" (the first model) and "random" (the models it adds); retune's "incumbent"
# (re-run), "retune" (from the good region) and "explore" (from the whole space). A string:
# the kinds are the table's, which a test may extend.
Origin = str


@dataclass(frozen=True)
class Point:
    """One configuration to evaluate; `index` is its stable identity within a run."""

    index: int
    params: dict[str, object]
    origin: Origin

    @property
    def trial_id(self) -> str:
        return f"t{self.index:05d}"


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


def trial_seed(sweep_seed: int, index: int) -> int:
    """Each configuration gets its own stream, independent of the order trials happen to run."""
    return int(np.random.SeedSequence([sweep_seed, index]).generate_state(1, dtype=np.uint32)[0])
