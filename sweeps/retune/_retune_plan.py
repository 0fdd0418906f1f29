"""What a re-tune evaluates and how it decides, as plain functions: no Ray, no files.

A re-tune spends a small budget where history says the good configurations are, keeps a share
for the whole space (the optimum may have moved out of the old region) and re-evaluates the
incumbent on today's data, which is what both the drift flag and the decision compare against.
See docs/retune.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from analysis import Mode
from search_spaces import SearchSpace, SearchSpaceError
from sweeps._errors import Problem, SpecError
from sweeps.plan import Origin
from sweeps.spec import RetuneSpec, SpecModel, behaviour

__all__ = [
    "INCUMBENT",
    "Judgement",
    "full_budget",
    "good_region",
    "judge",
    "plan_retune",
    "point_in_space",
    "resolve_budget",
]

# The `origin` of each trial of a re-tune.
INCUMBENT: Final = "incumbent"
LOCAL: Final = "retune"
EXPLORE: Final = "explore"


def full_budget(spec: SpecModel, space: SearchSpace) -> int | None:
    """Configurations a full sweep of this spec evaluates (its strategy's count); None for a
    strategy without a fixed count (a time budget), where only a count of trials can be given."""
    return behaviour(spec.strategy).budget(spec.strategy, space)


def resolve_budget(settings: RetuneSpec, full: int | None) -> int:
    """Trials of one re-tune, the incumbent's included: a count as given, a share of `full`
    rounded up (at least 2, so there is always one newcomer beside the incumbent)."""
    if isinstance(settings.budget, int):
        return settings.budget
    if full is None:
        message = "this strategy has no fixed number of configurations; give a count (an int)"
        raise SpecError([Problem("retune.budget", settings.budget, message)])
    return max(2, math.ceil(settings.budget * full))


def _unit(space: SearchSpace, config: Mapping[str, object]) -> np.ndarray | None:
    """Unit coordinates of a recorded point, clipped into the cube: history recorded under
    other bounds still says where to look. None when a value cannot be placed at all (a
    choice the space no longer has, a missing or non-finite value)."""
    u = np.empty(len(space))
    for j, (name, domain) in enumerate(space.domains.items()):
        value = config.get(name)
        try:
            with np.errstate(all="ignore"):  # log of a negative recorded value: nan, dropped
                # Why the type ignore below: a recorded value of any type; what to_unit
                # cannot place is caught below
                coordinate = float(domain.to_unit(value))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, SearchSpaceError):
            return None
        if not math.isfinite(coordinate):
            return None
        u[j] = min(1.0, max(0.0, coordinate))
    return u


def point_in_space(space: SearchSpace, config: Mapping[str, object]) -> dict[str, object]:
    """The incumbent as a point of today's space: its own values when they are valid (so it is
    re-run exactly), else the nearest point inside (the spec's bounds changed)."""
    own = {name: config.get(name) for name in space.names}
    try:
        space.check_config(own)
        return own
    except SearchSpaceError:
        pass
    u = _unit(space, config)
    if u is None:
        u = np.array([_unit_or_centre(space, name, config.get(name)) for name in space.names])
    return space.from_unit(u)


def _unit_or_centre(space: SearchSpace, name: str, value: object) -> float:
    try:
        with np.errstate(all="ignore"):
            # Why the type ignore below: a recorded value of any type; what to_unit
            # cannot place is caught below
            coordinate = float(space.domains[name].to_unit(value))  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, SearchSpaceError):
        return 0.5
    return min(1.0, max(0.0, coordinate)) if math.isfinite(coordinate) else 0.5


def good_region(
    space: SearchSpace,
    history: pd.DataFrame,
    metric: str,
    mode: Mode,
    *,
    top: float,
    margin: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The box, in unit coordinates, spanned by the best `top` share of history (at least two
    points when there are two), padded by `margin` on every side and clipped to the cube."""
    ranked = history[np.isfinite(pd.to_numeric(history[metric], errors="coerce"))]
    ranked = ranked.sort_values(metric, ascending=mode == "min", kind="stable")
    units = [u for u in (_unit(space, row) for row in ranked.to_dict("records")) if u is not None]
    if not units:
        return np.zeros(len(space)), np.ones(len(space))
    keep = min(len(units), max(2, math.ceil(top * len(units))))
    best = np.array(units[:keep])
    low = np.clip(best.min(axis=0) - margin, 0.0, 1.0)
    high = np.clip(best.max(axis=0) + margin, 0.0, 1.0)
    return low, high


def plan_retune(
    space: SearchSpace,
    incumbent: Mapping[str, object],
    history: pd.DataFrame,
    settings: RetuneSpec,
    budget: int,
    rng: np.random.Generator,
    *,
    metric: str,
    mode: Mode,
) -> list[tuple[dict[str, object], Origin]]:
    """(params, origin) for every trial: the incumbent first, then `explore` of the rest from
    the whole space and the others from the good region."""
    plan: list[tuple[dict[str, object], Origin]] = [(point_in_space(space, incumbent), INCUMBENT)]
    newcomers = budget - 1
    explore = round(settings.explore * newcomers)
    local = newcomers - explore
    low, high = good_region(space, history, metric, mode, top=settings.top, margin=settings.margin)
    for u in low + rng.random((local, len(space))) * (high - low):
        plan.append((space.from_unit(u), LOCAL))
    for u in rng.random((explore, len(space))):
        plan.append((space.from_unit(u), EXPLORE))
    return plan


@dataclass(frozen=True)
class Judgement:
    """`drop` is how much worse the incumbent scores now than when chosen (positive: worse);
    inf when it no longer trains at all. `keep` says the incumbent stays the current best."""

    drop: float
    drift: bool
    keep: bool


def judge(
    then: float,
    now: float | None,
    best: float,
    best_is_incumbent: bool,
    *,
    mode: Mode,
    drift_threshold: float,
    min_improvement: float,
) -> Judgement:
    """Drift compares the incumbent with itself (then vs now); the decision compares today's
    newcomers with the incumbent today, never with scores measured on older data."""
    sign = 1.0 if mode == "max" else -1.0
    drop = math.inf if now is None else sign * (then - now)
    drift = drop > drift_threshold
    if best_is_incumbent:
        return Judgement(drop, drift, keep=True)
    keep = now is not None and sign * (best - now) <= min_improvement
    return Judgement(drop, drift, keep=keep)
