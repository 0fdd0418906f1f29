"""The contract every sampler keeps, run against each one (as optuna/testing runs one suite
against every sampler); a new sampler joins `CASES` and must pass it all.

Two kinds of sampler draw points in a box:

- the space's samplers (`Sampler`: `RandomSampler`, `SobolSampler`), whose box is the whole
  space;
- the samplers inside one coarse-to-fine round (`SamplerName`: random, sobol, model), whose box
  is the round's narrowed bounds. They are reached through `CoarseToFine`, their one public
  entry: a round over the whole space, then the round drawn in the box narrowed around it, with
  enough results before it that "model" fits its Gaussian process rather than falling back to
  Sobol.

For any space (hypothesis draws the bounds, the scales and n): n configurations inside the box,
each parameter a plain Python value of its kind; log and reverse-log (1 - beta) values inside
their bounds, beta below 1; the same seed draws the same points and another seed others; and the
quasi-random samplers keep Sobol's documented balance (`SobolSampler`'s docstring): n = 2^m
points put exactly one point in each of n equal strata of every float coordinate of the box.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import get_args

import numpy as np
import pytest
from _spaces import bowl, check_types, spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import search_spaces
from search_spaces import (
    ChoiceDomain,
    CoarseToFine,
    FloatDomain,
    IntDomain,
    RandomSampler,
    Sampler,
    SamplerName,
    SearchSpace,
    SobolSampler,
)

Config = dict[str, object]
Bounds = dict[str, object]
# Results told before the drawn round: at least what `model` needs to fit (2 per parameter, 8
# at least) for the spaces drawn here (at most 5 parameters).
HISTORY = 16
# "model" fits a Gaussian process per draw (~50 ms): the tests that draw three times per example
# run fewer examples.
PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(PROPERTY, max_examples=20)


@dataclass(frozen=True)
class Case:
    """One sampler: `draw(space, n, seed)` gives its n configurations and the box they must lie
    in (each parameter's (low, high), or a choice's allowed values)."""

    name: str
    draw: Callable[[SearchSpace, int, int], tuple[list[Config], Bounds]]
    balanced: bool  # Sobol's promise: one point per stratum for n = 2^m


def _whole_space(space: SearchSpace) -> Bounds:
    return {
        name: list(d.values) if isinstance(d, ChoiceDomain) else (d.low, d.high)
        for name, d in space.domains.items()
    }


def _space_sampler(make: Callable[[int], Sampler]) -> Case:
    def draw(space: SearchSpace, n: int, seed: int) -> tuple[list[Config], Bounds]:
        return make(seed).sample(space, n), _whole_space(space)

    return Case(make.__name__, draw, balanced=make is SobolSampler)


def _box_sampler(name: SamplerName) -> Case:
    def draw(space: SearchSpace, n: int, seed: int) -> tuple[list[Config], Bounds]:
        search = CoarseToFine(space, rounds=2, per_round=n, seed=seed, sampler=name)
        known = space.sample(np.random.default_rng(seed), HISTORY)  # e.g. `initial` points
        search.tell(known, [bowl(space, c) for c in known])
        first = search.ask()  # the whole space
        search.tell(first, [bowl(space, c) for c in first])
        configs = search.ask()  # inside the box narrowed around the best so far
        bounds = search.bounds[1]
        assert bounds is not None
        return configs, dict(bounds)

    return Case(f"box-{name}", draw, balanced=name == "sobol")


CASES = [_space_sampler(RandomSampler), _space_sampler(SobolSampler)] + [
    _box_sampler(name) for name in get_args(SamplerName)
]
each_sampler = pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)


def test_every_sampler_is_in_the_suite() -> None:
    exported = {n for n in search_spaces.__all__ if n.endswith("Sampler") and n != "Sampler"}
    assert {c.name for c in CASES} == exported | {f"box-{n}" for n in get_args(SamplerName)}


def _inside(config: Config, bounds: Bounds) -> None:
    for name, value in config.items():
        allowed = bounds[name]
        if isinstance(allowed, list):
            assert value in allowed, (name, value, allowed)
        else:
            low, high = allowed  # type: ignore[misc]
            assert low <= value <= high, (name, value, allowed)


# --- what every sampler draws ----------------------------------------------------------------


@each_sampler
@PROPERTY
@given(space=spaces(), n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_n_points_of_the_box_as_plain_values(
    case: Case, space: SearchSpace, n: int, seed: int
) -> None:
    configs, bounds = case.draw(space, n, seed)
    assert len(configs) == n
    for config in configs:
        check_types(space, config)
        _inside(config, bounds)


@each_sampler
@FEWER
@given(space=spaces(), n=st.integers(2, 16), seed=st.integers(0, 2**32 - 2))
def test_the_same_seed_draws_the_same_points_and_another_seed_others(
    case: Case, space: SearchSpace, n: int, seed: int
) -> None:
    configs, bounds = case.draw(space, n, seed)
    assert case.draw(space, n, seed) == (configs, bounds)
    assert case.draw(space, n, seed + 1)[0] != configs


@st.composite
def _scaled_spaces(draw: st.DrawFn) -> SearchSpace:
    """A log learning rate over up to 12 decades and a beta up to 1 - 1e-12: the scales at
    their extremes, where 1 - (1 - beta) or exp(log(x)) can round past a bound."""
    low = 10.0 ** draw(st.floats(-12.0, 0.0))
    gap = 10.0 ** draw(st.floats(-12.0, -1.0))
    return SearchSpace(
        {
            "lr": FloatDomain(low, low * 10.0 ** draw(st.floats(1e-3, 12.0)), "log"),
            "beta": FloatDomain(1.0 - gap * 10.0 ** draw(st.floats(1e-3, 6.0)), 1.0 - gap,
                                "reverse_log"),
            "hidden": IntDomain(1, draw(st.integers(2, 2**20)), "log"),
        }
    )  # fmt: skip


@each_sampler
@FEWER
@given(space=_scaled_spaces(), n=st.integers(1, 32), seed=st.integers(0, 2**32 - 1))
def test_log_and_reverse_log_values_map_back_inside_their_bounds(
    case: Case, space: SearchSpace, n: int, seed: int
) -> None:
    configs, bounds = case.draw(space, n, seed)
    lr, beta = space.domains["lr"], space.domains["beta"]
    assert isinstance(lr, FloatDomain) and isinstance(beta, FloatDomain)
    for config in configs:
        _inside(config, bounds)
        x, b = config["lr"], config["beta"]
        assert isinstance(x, float) and isinstance(b, float)
        assert lr.low <= x <= lr.high and 0.0 <= float(lr.to_unit(x)) <= 1.0
        assert b < 1.0 and 1.0 - beta.high <= 1.0 - b <= 1.0 - beta.low
        assert 0.0 <= float(beta.to_unit(b)) <= 1.0


# --- what the quasi-random ones promise ----------------------------------------------------


def _box_unit(domain: FloatDomain, bounds: tuple[float, float], values: list[float]) -> np.ndarray:
    """The values' coordinates in the box, 0 at its low end and 1 at its high end, on the
    parameter's own scale (a Sobol point is even in log(lr), not in lr)."""
    low, high = (float(domain.to_unit(b)) for b in bounds)
    return (np.asarray(domain.to_unit(np.asarray(values))) - low) / (high - low)


@pytest.mark.parametrize("case", [c for c in CASES if c.balanced], ids=lambda c: c.name)
@PROPERTY
@given(space=spaces(), m=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_n_a_power_of_two_puts_one_point_in_each_of_n_strata(
    case: Case, space: SearchSpace, m: int, seed: int
) -> None:
    n = 2**m
    configs, bounds = case.draw(space, n, seed)
    for name, domain in space.domains.items():
        if not isinstance(domain, FloatDomain):
            continue
        box = _box_unit(domain, bounds[name], [c[name] for c in configs])  # type: ignore[arg-type]
        strata = np.clip(np.floor(box * n), 0, n - 1).astype(int)
        assert sorted(strata.tolist()) == list(range(n)), (name, box)


def test_random_points_are_not_balanced_so_the_balance_test_can_fail() -> None:
    """The stratum check above is not vacuous: 16 independent points leave some of 16 strata
    empty (all filled has probability 16!/16^16, about 1e-6)."""
    space = SearchSpace({"x": FloatDomain(0.0, 1.0)})
    xs = [float(c["x"]) for c in RandomSampler(0).sample(space, 16)]  # type: ignore[arg-type]
    assert len({math.floor(x * 16) for x in xs}) < 16


# --- the space's samplers: their protocol and their stream ---------------------------------

SPACE_SAMPLERS: list[Callable[[int], Sampler]] = [RandomSampler, SobolSampler]
SQUARE = SearchSpace({"x": FloatDomain(0.0, 1.0), "y": FloatDomain(0.0, 1.0)})


@pytest.mark.parametrize("make", SPACE_SAMPLERS, ids=lambda m: m.__name__)
def test_is_a_sampler(make: Callable[[int], Sampler]) -> None:
    assert isinstance(make(0), Sampler)


@pytest.mark.parametrize("make", SPACE_SAMPLERS, ids=lambda m: m.__name__)
def test_successive_calls_continue_the_stream(make: Callable[[int], Sampler]) -> None:
    sampler = make(5)
    first, second = sampler.sample(SQUARE, 8), sampler.sample(SQUARE, 8)
    assert first == make(5).sample(SQUARE, 8)
    assert not {tuple(c.values()) for c in first} & {tuple(c.values()) for c in second}


@pytest.mark.parametrize("make", SPACE_SAMPLERS, ids=lambda m: m.__name__)
def test_zero_configs(make: Callable[[int], Sampler]) -> None:
    assert make(0).sample(SQUARE, 0) == []
