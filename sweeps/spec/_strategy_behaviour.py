"""What each built-in strategy does before anything runs: its budget, its fixed points, what it
asks of the rest of the spec, its first proposals and its `validate` line.

The spec's checks, `validate --explain`, the planner and `retune` ask a strategy's behaviour
instead of testing its type, as Optuna's study asks its sampler; the strategy table
(`_strategy_table.STRATEGIES`) gives each kind its behaviour, beside its model, its
capabilities and who runs it. The drivers themselves (coarse-to-fine's rounds, TPE, panda's
loop, auto's decision) live in their own modules, above the spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from analysis import Mode
from search_spaces import (
    ChoiceDomain,
    CoarseToFine,
    IntDomain,
    RandomSampler,
    SearchSpace,
    SearchSpaceError,
    SobolSampler,
    grid_points,
)
from sweeps._errors import MISSING, Problem
from sweeps.spec._strategy_specs import (
    MAX_TRIALS,
    AutoStrategy,
    CoarseToFineStrategy,
    GridStrategy,
    PandaStrategy,
    RandomStrategy,
    SobolStrategy,
    StrategyModel,
    TpeStrategy,
)

__all__ = [
    "AutoBehaviour",
    "CoarseToFineBehaviour",
    "GridBehaviour",
    "PandaBehaviour",
    "RandomBehaviour",
    "SobolBehaviour",
    "StrategyBehaviour",
    "TpeBehaviour",
    "grid_size_bound",
    "panda_start_points",
]

S = TypeVar("S", bound=StrategyModel)


class StrategyBehaviour(Generic[S]):
    """The questions every part of caviar may ask about a strategy's plan; defaults fit a
    strategy that plans no fixed count and no points. What it can do (pack, adapt, continue
    after an edit, re-tune ...) is its row's in the strategy table."""

    def budget(self, strategy: S, space: SearchSpace) -> int | None:
        """The configurations a full run plans (without `initial`); None: not a fixed count."""
        return None

    def size_problem(self, strategy: S, space: SearchSpace, initial: int) -> Problem | None:
        """Why the plan is too large, with `initial` configurations on top; None when it fits."""
        budget = self.budget(strategy, space)
        if budget is None or budget + initial <= MAX_TRIALS:
            return None
        message = (
            f"plans {budget} configurations and `initial` {initial} more, over the limit of "
            f"{MAX_TRIALS}"
        )
        return Problem("strategy.kind", strategy.kind, message)

    def fixed_points(self, strategy: S, space: SearchSpace, seed: int) -> list[dict[str, Any]]:
        """The points known before anything runs (after `initial`): none for adaptive ones."""
        return []

    def problems(
        self,
        strategy: S,
        space: SearchSpace,
        *,
        fixed: Mapping[str, object],
        initial: Sequence[object],
        early_stopping: str | None,
    ) -> list[Problem]:
        """What this strategy needs of the rest of the spec: the trainable's fixed values, the
        `initial` points and the early-stopping kind; [] when it needs nothing."""
        return []

    def preview(
        self, strategy: S, space: SearchSpace, seed: int, mode: Mode
    ) -> list[dict[str, Any]]:
        """The first points an adaptive strategy will propose, when they depend on no result
        (for `validate --explain`); [] otherwise."""
        return []

    def describe(self, strategy: S, space: SearchSpace, seed: int, initial: int) -> str:
        """One line for `caviar validate`."""
        planned = len(self.fixed_points(strategy, space, seed)) + initial
        return f"{strategy.kind}, {planned} configurations ({initial} from `initial`)"


class RandomBehaviour(StrategyBehaviour[RandomStrategy]):
    def budget(self, strategy: RandomStrategy, space: SearchSpace) -> int:
        return strategy.samples

    def fixed_points(
        self, strategy: RandomStrategy, space: SearchSpace, seed: int
    ) -> list[dict[str, Any]]:
        return RandomSampler(seed=seed).sample(space, strategy.samples)


class SobolBehaviour(StrategyBehaviour[SobolStrategy]):
    def budget(self, strategy: SobolStrategy, space: SearchSpace) -> int:
        return strategy.samples

    def fixed_points(
        self, strategy: SobolStrategy, space: SearchSpace, seed: int
    ) -> list[dict[str, Any]]:
        return SobolSampler(seed=seed).sample(space, strategy.samples)


class GridBehaviour(StrategyBehaviour[GridStrategy]):
    def budget(self, strategy: GridStrategy, space: SearchSpace) -> int:
        return grid_size_bound(space, strategy.points)

    def size_problem(
        self, strategy: GridStrategy, space: SearchSpace, initial: int
    ) -> Problem | None:
        size = self.budget(strategy, space)
        if size + initial <= MAX_TRIALS:
            return None
        message = f"the grid has {size} points, more than the limit of {MAX_TRIALS}"
        return Problem("strategy.points", strategy.points, message)

    def fixed_points(
        self, strategy: GridStrategy, space: SearchSpace, seed: int
    ) -> list[dict[str, Any]]:
        return grid_points(space, strategy.points)


class CoarseToFineBehaviour(StrategyBehaviour[CoarseToFineStrategy]):
    def budget(self, strategy: CoarseToFineStrategy, space: SearchSpace) -> int:
        return strategy.rounds * strategy.per_round

    def size_problem(
        self, strategy: CoarseToFineStrategy, space: SearchSpace, initial: int
    ) -> Problem | None:
        total = self.budget(strategy, space)
        if total + initial <= MAX_TRIALS:
            return None
        message = f"rounds x per_round = {total}, more than the limit of {MAX_TRIALS}"
        return Problem("strategy.per_round", strategy.per_round, message)

    def preview(
        self, strategy: CoarseToFineStrategy, space: SearchSpace, seed: int, mode: Mode
    ) -> list[dict[str, Any]]:
        search = CoarseToFine(
            space, strategy.rounds, strategy.per_round, seed, mode, strategy.sampler
        )
        return search.ask()

    def describe(
        self, strategy: CoarseToFineStrategy, space: SearchSpace, seed: int, initial: int
    ) -> str:
        total = strategy.rounds * strategy.per_round + initial
        barrier = (
            "each round waits for the last"
            if strategy.start_next_at >= 1
            else f"next round starts once {strategy.start_next_at:.0%} of a round is recorded"
        )
        return (
            f"{strategy.kind}, {strategy.rounds} rounds x {strategy.per_round} "
            f"({strategy.sampler} sampler) + {initial} from `initial` = {total} configurations; "
            f"round 1 samples the whole space, each next round a box narrowed around the best "
            f"so far; {barrier}"
        )


class TpeBehaviour(StrategyBehaviour[TpeStrategy]):
    def budget(self, strategy: TpeStrategy, space: SearchSpace) -> int:
        return strategy.samples

    def describe(self, strategy: TpeStrategy, space: SearchSpace, seed: int, initial: int) -> str:
        return (
            f"{strategy.kind} (Optuna through Ray), {strategy.samples} + {initial} from "
            f"`initial` = {strategy.samples + initial} configurations, {strategy.startup} random "
            "first"
        )


class PandaBehaviour(StrategyBehaviour[PandaStrategy]):
    def problems(
        self,
        strategy: PandaStrategy,
        space: SearchSpace,
        *,
        fixed: Mapping[str, object],
        initial: Sequence[object],
        early_stopping: str | None,
    ) -> list[Problem]:
        problems = babysitting_problems(strategy.start, space, fixed)
        if initial:
            message = "panda starts from strategy.start; `initial` is for sampling strategies"
            problems.append(Problem("initial", list(initial), message))
        if early_stopping is not None:
            message = "does not apply to panda, which stops by itself (strategy.patience)"
            problems.append(Problem("early_stopping", early_stopping, message))
        return problems

    def describe(self, strategy: PandaStrategy, space: SearchSpace, seed: int, initial: int) -> str:
        starts = "; ".join(
            ", ".join(f"{k}={_fmt(v)}" for k, v in point.items())
            for point in panda_start_points(strategy, space, seed)
        )
        return (
            f"{strategy.kind}, {strategy.models} model(s) judged every {strategy.period} epochs "
            f"(raise lr x{strategy.raise_factor:g} when better, roll back and x"
            f"{strategy.lower_factor:g} when worse, stop after {strategy.patience} rollbacks "
            f"in a row); start: {starts}"
        )


class AutoBehaviour(StrategyBehaviour[AutoStrategy]):
    def problems(
        self,
        strategy: AutoStrategy,
        space: SearchSpace,
        *,
        fixed: Mapping[str, object],
        initial: Sequence[object],
        early_stopping: str | None,
    ) -> list[Problem]:
        # Panda may be chosen: its start and lr must hold. `initial` and early stopping serve
        # coarse-to-fine when that is chosen instead.
        return babysitting_problems(strategy.start, space, fixed)

    def describe(self, strategy: AutoStrategy, space: SearchSpace, seed: int, initial: int) -> str:
        return (
            f"{strategy.kind}: panda or coarse_to_fine, decided when the run starts from the "
            f"cluster, a cost probe and the time budget ({strategy.time_budget})"
        )


def babysitting_problems(
    start: Mapping[str, object], space: SearchSpace, fixed: Mapping[str, object]
) -> list[Problem]:
    """`start` must be a point of the space, and there must be a learning rate to nudge.

    Parameters `start` leaves out begin at the centre of the space (in the warped coordinates),
    so the check is made on that completed point: only `start`'s own keys can be at fault.
    """
    problems: list[Problem] = []
    centre = space.from_unit([0.5] * len(space))
    try:
        space.check_config({**centre, **start})
    except SearchSpaceError as exc:
        for p in exc.problems:
            field = f"strategy.start.{p.field}" if p.field else "strategy.start"
            problems.append(Problem(field, p.value, p.message))
    if "lr" not in space.names and "lr" not in fixed:
        message = "panda nudges the learning rate: search it (or fix it in trainable.fixed)"
        problems.append(Problem("search_space.lr", MISSING, message))
    return problems


def panda_start_points(
    strategy: PandaStrategy, space: SearchSpace, seed: int
) -> list[dict[str, object]]:
    """Member 1 starts at `start` (the rest at the space's centre); the others at random points,
    drawn from the spec's seed so that a resumed run rebuilds the same ones."""
    first = {**space.from_unit([0.5] * len(space)), **strategy.start}
    others = RandomSampler(seed=seed).sample(space, strategy.models - 1)
    return [first, *others]


def grid_size_bound(space: SearchSpace, points: int) -> int:
    """The grid's size at most, computed without building it (a huge grid is the error)."""
    size = 1
    for domain in space.domains.values():
        if isinstance(domain, ChoiceDomain):
            size *= len(domain.values)
        elif isinstance(domain, IntDomain):
            size *= min(points, domain.high - domain.low + 1)
        else:
            size *= points
    return size


def _fmt(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)
