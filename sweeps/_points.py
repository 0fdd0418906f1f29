"""The configurations a sweep evaluates, in order: `initial` first, then the strategy's points.

Points are a pure function of the spec (seeded), so a resumed run regenerates the same list and
can skip the ones already recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweeps._spec import Sweep
from sweeps._strategies import behaviour

__all__ = ["Point", "plan_points", "trial_seed"]


@dataclass(frozen=True)
class Point:
    """One configuration to evaluate; `index` is its stable identity within a run."""

    index: int
    params: dict[str, object]
    origin: str  # "initial" or the strategy kind

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


def trial_seed(sweep_seed: int, index: int) -> int:
    """Each configuration gets its own stream, independent of the order trials happen to run."""
    return int(np.random.SeedSequence([sweep_seed, index]).generate_state(1, dtype=np.uint32)[0])
