"""The points a sweep evaluates: a planned configuration (`Point`), an adaptive strategy's
decision (`PlannedPoint`), where each came from (`Origin`), its trial id and its seed.

Values only: what plans them is the spec's (`plan_points`) and the strategies' (the proposers).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Origin", "PlannedPoint", "Point", "trial_id_of", "trial_seed"]

# Where a trial's configuration came from (the `origin` column of `trials`): "initial" for the
# spec's `initial` list; the strategy's kind (a key of the strategy table) for its own points;
# panda's "start" (the first model) and "random" (the models it adds); retune's "incumbent"
# (re-run), "retune" (from the good region) and "explore" (from the whole space). A string:
# the kinds are the table's, which a test may extend.
Origin = str


def trial_id_of(index: int) -> str:
    """The `trial_id` of the configuration at `index` of a run (its `trials` row's key)."""
    return f"t{index:05d}"


@dataclass(frozen=True)
class Point:
    """One configuration to evaluate; `index` is its stable identity within a run."""

    index: int
    params: dict[str, object]
    origin: Origin

    @property
    def trial_id(self) -> str:
        return trial_id_of(self.index)


@dataclass(frozen=True)
class PlannedPoint:
    """A point an adaptive strategy decided, in its `round` (coarse-to-fine's round; 0 for
    strategies without rounds)."""

    index: int
    round: int
    params: dict[str, object]
    origin: Origin

    @property
    def trial_id(self) -> str:
        return trial_id_of(self.index)


def trial_seed(sweep_seed: int, index: int) -> int:
    """Each configuration gets its own stream, independent of the order trials happen to run."""
    import numpy as np  # here, so that `caviar --version` (which imports `Progress`) skips numpy

    return int(np.random.SeedSequence([sweep_seed, index]).generate_state(1, dtype=np.uint32)[0])
