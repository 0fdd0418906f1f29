"""Ways to choose configurations before any score is known: random, Sobol, and a grid.

All of them place points in the unit cube and let the space map them through each parameter's
scale, so a Sobol point spreads evenly over log(lr) and log(1 - beta), not over lr and beta.
"""

from __future__ import annotations

import itertools
import numbers
import warnings
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ._domains import ChoiceDomain, IntDomain
from ._errors import Problem, SearchSpaceError
from ._space import SearchSpace, configs_from_unit

if TYPE_CHECKING:
    from scipy.stats import qmc


@runtime_checkable
class Sampler(Protocol):
    """Anything that proposes n configurations of a space; successive calls continue its stream."""

    def sample(self, space: SearchSpace, n: int) -> list[dict[str, object]]: ...


class RandomSampler:
    """Independent draws, uniform in every parameter's unit coordinate."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def sample(self, space: SearchSpace, n: int) -> list[dict[str, object]]:
        return space.sample(self._rng, n)


class SobolSampler:
    """A scrambled Sobol sequence: n points cover the cube more evenly than n random ones.

    Successive calls continue one sequence, so a sweep that asks 64 then 64 more gets the same
    128 points as one that asks 128. SciPy warns when n is not a power of 2 because the full
    balance properties only hold for such n; we silence that, since any prefix of a Sobol
    sequence is still low-discrepancy and far more even than random points.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._engine: qmc.Sobol | None = None

    def sample(self, space: SearchSpace, n: int) -> list[dict[str, object]]:
        if self._engine is None:
            from scipy.stats import qmc  # scipy.stats takes ~1 s to import; only Sobol needs it

            self._engine = qmc.Sobol(len(space), scramble=True, seed=self._seed)
        elif self._engine.d != len(space):
            raise ValueError(
                f"this SobolSampler continues a {self._engine.d}-D sequence; "
                f"it cannot sample a {len(space)}-D space"
            )
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="The balance properties of Sobol", category=UserWarning
            )
            points = self._engine.random(n)
        return configs_from_unit(space, points)


def grid_points(space: SearchSpace, points: int) -> list[dict[str, object]]:
    """Every combination of `points` evenly spaced unit coordinates per parameter, ends included.

    A baseline to compare against, not a recommended strategy: the grid is even in each
    parameter's unit coordinate (so geometric for a log scale); an int parameter keeps the
    distinct integers that grid lands on and a choice lists all its values. The first
    parameter varies slowest.
    """
    if isinstance(points, bool) or not isinstance(points, numbers.Integral) or points < 2:
        message = "must be an integer >= 2, so that both ends are on the grid"
        raise SearchSpaceError([Problem("points", points, message)])
    unit = np.linspace(0.0, 1.0, int(points))
    axes: list[list[object]] = []
    for domain in space.domains.values():
        if isinstance(domain, ChoiceDomain):
            axes.append(list(domain.values))
        elif isinstance(domain, IntDomain):
            axes.append(np.unique(domain.from_unit(unit)).tolist())
        else:
            axes.append(np.asarray(domain.from_unit(unit)).tolist())
    return [dict(zip(space.names, combo, strict=True)) for combo in itertools.product(*axes)]
