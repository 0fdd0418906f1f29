"""Hypothesis strategies for search spaces, shared by the sampler and narrowing property tests.

Bounds are drawn wide (linear ranges from 1e-3 to 1e3 wide, logs over up to eight decades, a
reverse-log `beta` up to 1 - 1e-9) but not so narrow that float64 cannot tell two draws apart,
so that "another seed draws other points" holds for every space drawn.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from hypothesis import strategies as st

from search_spaces import ChoiceDomain, Domain, FloatDomain, IntDomain, SearchSpace

# Distinct as choices (no 1 beside 1.0 or True): ChoiceDomain refuses duplicates.
CHOICE_POOL: tuple[object, ...] = (16, 32, 64, 0.5, "relu", "tanh", True, False)


@st.composite
def float_domains(draw: st.DrawFn) -> FloatDomain:
    scale = draw(st.sampled_from(["linear", "log", "reverse_log"]))
    if scale == "linear":
        low = draw(st.floats(-1e3, 1e3))
        return FloatDomain(low, low + draw(st.floats(1e-3, 1e3)), "linear")
    if scale == "log":
        exponent = draw(st.floats(-8.0, 2.0))
        decades = draw(st.floats(0.1, 8.0))
        return FloatDomain(10.0**exponent, 10.0 ** (exponent + decades), "log")
    # reverse_log: 1 - beta log-uniform, from 1 - high (down to 1e-9) up to 1 - low
    gap = 10.0 ** draw(st.floats(-9.0, -0.3))
    return FloatDomain(1.0 - gap * 10.0 ** draw(st.floats(0.1, 6.0)), 1.0 - gap, "reverse_log")


@st.composite
def int_domains(draw: st.DrawFn) -> IntDomain:
    if draw(st.booleans()):
        low = draw(st.integers(-100, 100))
        return IntDomain(low, low + draw(st.integers(1, 1000)), "linear")
    low = draw(st.integers(1, 100))
    return IntDomain(low, low + draw(st.integers(1, 10_000)), "log")


def choice_domains() -> st.SearchStrategy[ChoiceDomain]:
    values = st.lists(st.sampled_from(CHOICE_POOL), min_size=1, max_size=5, unique=True)
    return values.map(lambda v: ChoiceDomain(tuple(v)))


def domains() -> st.SearchStrategy[Domain]:
    return st.one_of(float_domains(), int_domains(), choice_domains())


@st.composite
def spaces(draw: st.DrawFn, max_size: int = 5) -> SearchSpace:
    """A float parameter first (so that two seeds can always differ), then up to
    `max_size - 1` parameters of any kind."""
    first = draw(float_domains())
    others = draw(st.lists(domains(), max_size=max_size - 1))
    return SearchSpace({f"p{i}": d for i, d in enumerate([first, *others])})


def bowl(space: SearchSpace, config: Mapping[str, object]) -> float:
    """A deterministic score: a quadratic bowl in the unit coordinates, lowest at 0.3."""
    return float(np.sum((space.to_unit(config) - 0.3) ** 2))


def check_types(space: SearchSpace, config: Mapping[str, object]) -> None:
    """Exactly the space's parameters, in order, as plain Python values of each domain's kind:
    what a trial config, a Parquet row and a JSON state expect."""
    assert list(config) == list(space.names)
    for name, domain in space.domains.items():
        value = config[name]
        if isinstance(domain, FloatDomain):
            assert type(value) is float, (name, value)
        elif isinstance(domain, IntDomain):
            assert type(value) is int, (name, value)
        else:
            # the very value, of the very type (True is not 1, "16" is not 16)
            assert any(value == v and type(value) is type(v) for v in domain.values), (name, value)
    space.check_config(config)
