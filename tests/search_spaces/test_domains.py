"""Domains: construction invariants, the YAML form, unit coordinates, and their distributions."""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from search_spaces import (
    ChoiceDomain,
    FloatDomain,
    IntDomain,
    Problem,
    SearchSpaceError,
    domain_from_dict,
)

# Deterministic so CI never flakes on a newly discovered example; deadline off for slow CI hosts.
PROPERTY = settings(deadline=None, max_examples=100, derandomize=True)
N_DRAWS = 20_000
# Statistical tests use fixed seeds, so each either always passes or always fails. A count of k
# equal-probability bins out of N_DRAWS has sd sqrt(N p (1 - p)); we allow 5 sd (a fair sampler
# falls outside with probability ~6e-7 per bin), or ask scipy's chi-square test for p > 1e-3.
SD_ALLOWED = 5


def within_sd(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= SD_ALLOWED * math.sqrt(n * p * (1 - p))


# --- construction invariants ------------------------------------------------------------------

BAD_DOMAINS: list[tuple[str, Callable[[], object], str, str]] = [
    ("inverted bounds", lambda: FloatDomain(0.1, 0.001), "high", "low=0.1, high=0.001"),
    ("equal bounds", lambda: FloatDomain(1.0, 1.0), "high", "low=1.0, high=1.0"),
    ("equal int bounds", lambda: IntDomain(4, 4), "high", "low=4, high=4"),
    ("log low zero", lambda: FloatDomain(0.0, 1.0, "log"), "low", "0.0"),
    ("log low negative", lambda: FloatDomain(-1.0, 1.0, "log"), "low", "-1.0"),
    ("reverse_log high 1", lambda: FloatDomain(0.9, 1.0, "reverse_log"), "high", "1.0"),
    ("reverse_log high >1", lambda: FloatDomain(0.9, 1.5, "reverse_log"), "high", "1.5"),
    ("nan", lambda: FloatDomain(math.nan, 1.0), "low", "nan"),
    ("inf", lambda: FloatDomain(0.0, math.inf), "high", "inf"),
    ("non-integral int", lambda: IntDomain(1.5, 4), "low", "1.5"),  # type: ignore[arg-type]
    ("int log low 0", lambda: IntDomain(0, 10, "log"), "low", "0"),
    ("empty choices", lambda: ChoiceDomain(()), "values", "()"),
    ("duplicate choices", lambda: ChoiceDomain(("a", "b", "a")), "values", "'a'"),
    ("1 and 1.0 duplicate", lambda: ChoiceDomain((1, 1.0)), "values", "1.0"),
    ("unhashable choice", lambda: ChoiceDomain(([1],)), "values", "[1]"),
    ("None choice", lambda: ChoiceDomain((None,)), "values", "None"),
    ("nan choice", lambda: ChoiceDomain((math.nan,)), "values", "nan"),
    ("choices not a list", lambda: ChoiceDomain("ab"), "values", "'ab'"),  # type: ignore[arg-type]
    ("unknown scale", lambda: FloatDomain(0, 1, "lg"), "scale", "'lg'"),  # type: ignore[arg-type]
    ("int reverse_log", lambda: IntDomain(1, 9, "reverse_log"), "scale", "'reverse_log'"),  # type: ignore[arg-type]
    ("bool as number", lambda: FloatDomain(True, 2.0), "low", "True"),
    ("bool as int", lambda: IntDomain(0, True), "high", "True"),
    ("str as number", lambda: FloatDomain("0.1", 1.0), "low", "'0.1'"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("make", "field", "shown"), [case[1:] for case in BAD_DOMAINS], ids=[c[0] for c in BAD_DOMAINS]
)
def test_bad_domain_names_field_and_value(make: Callable[[], object], field: str, shown: str):
    with pytest.raises(SearchSpaceError) as info:
        make()
    assert f"{field}: " in str(info.value)
    assert shown in str(info.value)
    assert field in {p.field for p in info.value.problems}


def test_unknown_scale_lists_the_valid_ones():
    with pytest.raises(SearchSpaceError, match="'linear', 'log', 'reverse_log'"):
        FloatDomain(0, 1, "exp")  # type: ignore[arg-type]
    with pytest.raises(SearchSpaceError, match="must be one of 'linear', 'log' "):
        IntDomain(1, 2, "exp")  # type: ignore[arg-type]


def test_every_problem_of_a_domain_is_reported():
    with pytest.raises(SearchSpaceError) as info:
        FloatDomain("a", math.nan, "exp")  # type: ignore[arg-type]
    assert [p.field for p in info.value.problems] == ["low", "high", "scale"]


BAD_DICTS: list[tuple[str, object, str, str]] = [
    ("unknown key", {"type": "float", "low": 0, "high": 1, "step": 2}, "step", "unknown key"),
    ("missing key", {"type": "int", "low": 0}, "high", "missing key"),
    ("missing type", {"low": 0, "high": 1}, "type", "missing key"),
    ("unknown type", {"type": "double", "low": 0, "high": 1}, "type", "'double'"),
    ("wrong type", {"type": "float", "low": "small", "high": 1}, "low", "'small'"),
    ("values not list", {"type": "choice", "values": 3}, "values", "must be a list"),
    ("choice with low", {"type": "choice", "values": [1], "low": 0}, "low", "valid keys"),
    ("not a mapping", [1, 2], "", "must be a mapping"),
]


@pytest.mark.parametrize(
    ("d", "field", "shown"), [case[1:] for case in BAD_DICTS], ids=[c[0] for c in BAD_DICTS]
)
def test_bad_yaml_form_names_field(d: object, field: str, shown: str):
    with pytest.raises(SearchSpaceError) as info:
        domain_from_dict(d)  # type: ignore[arg-type]
    assert field in {p.field for p in info.value.problems}
    assert shown in str(info.value)


def test_yaml_form_reports_all_problems_at_once():
    d = {"type": "float", "low": -1, "high": "x", "scale": "log", "step": 1}
    with pytest.raises(SearchSpaceError) as info:
        domain_from_dict(d)
    assert sorted(p.field for p in info.value.problems) == ["high", "low", "step"]


def test_error_message_joins_problems_and_survives_pickling():
    problems = (Problem("low", -1, "must be > 0 for scale=log"), Problem("scale", "x", "bad"))
    err = SearchSpaceError(problems)
    assert isinstance(err, ValueError)
    assert str(err) == "low: must be > 0 for scale=log (got -1); scale: bad (got 'x')"
    assert str(Problem("", {}, "the search space is empty")) == "the search space is empty (got {})"
    again = pickle.loads(pickle.dumps(err))
    assert again.problems == problems and str(again) == str(err)


# --- values, normalisation and the YAML round trip ---------------------------------------------


@pytest.mark.parametrize(
    "domain",
    [
        FloatDomain(1e-4, 1.0, "log"),
        FloatDomain(0.9, 0.999, "reverse_log"),
        FloatDomain(-2.0, 3.0),
        IntDomain(16, 512, "log"),
        IntDomain(-3, 3),
        ChoiceDomain((32, "relu", 0.5, True)),
    ],
    ids=repr,
)
def test_to_dict_round_trips(domain: FloatDomain | IntDomain | ChoiceDomain):
    assert domain_from_dict(domain.to_dict()) == domain
    assert pickle.loads(pickle.dumps(domain)) == domain


def test_yaml_defaults_and_normalisation():
    assert domain_from_dict({"type": "float", "low": 0, "high": 1}) == FloatDomain(0.0, 1.0)
    assert domain_from_dict({"type": "int", "low": 2.0, "high": 8}) == IntDomain(2, 8)
    f = FloatDomain(0, 1)
    assert type(f.low) is float and type(f.high) is float
    i = IntDomain(np.int64(1), 4.0)  # type: ignore[arg-type]
    assert type(i.low) is int and type(i.high) is int
    c = ChoiceDomain([np.int64(1), np.float64(0.5)])  # type: ignore[arg-type]
    assert c.values == (1, 0.5) and type(c.values[0]) is int


def test_domains_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FloatDomain(0.0, 1.0).low = 0.5  # type: ignore[misc]


def test_contains_checks_type_and_bounds():
    f = FloatDomain(0.0, 1.0)
    assert f.contains(0) and f.contains(1.0) and f.contains(np.float32(0.5))
    assert not any(f.contains(x) for x in (True, "0.5", math.nan, 1.0000001, -0.1, None))
    i = IntDomain(1, 3)
    assert i.contains(1) and i.contains(3.0) and i.contains(np.int64(2))
    assert not any(i.contains(x) for x in (2.5, 0, 4, True, "2"))
    c = ChoiceDomain((1, "a"))
    assert c.contains(1) and c.contains(1.0) and c.contains("a") and c.contains(np.int64(1))
    assert not any(c.contains(x) for x in (True, "b", [1], 2))


# --- unit coordinates ---------------------------------------------------------------------------


def test_unit_coordinates_of_known_points():
    assert FloatDomain(1e-4, 1.0, "log").to_unit(1e-2) == pytest.approx(0.5)
    assert FloatDomain(0.9, 0.999, "reverse_log").to_unit(0.99) == pytest.approx(0.5)
    assert FloatDomain(-1.0, 3.0).to_unit(0.0) == pytest.approx(0.25)
    assert IntDomain(0, 3).to_unit(0) == pytest.approx(0.125)  # centre of [0, 1/4)
    assert ChoiceDomain(("a", "b")).to_unit("b") == pytest.approx(0.75)
    assert ChoiceDomain(("a", "b")).from_unit(0.5) == "b"  # cells are [i/n, (i+1)/n)


@pytest.mark.parametrize(
    "domain",
    [
        FloatDomain(1e-4, 1.0, "log"),
        FloatDomain(0.9, 0.999, "reverse_log"),
        FloatDomain(0.1, 0.7),
        IntDomain(16, 512, "log"),
        IntDomain(-3, 3),
        ChoiceDomain(("x", "y", "z")),
    ],
    ids=repr,
)
def test_unit_ends_map_to_the_bounds_and_are_clipped(
    domain: FloatDomain | IntDomain | ChoiceDomain,
):
    first, last = (
        (domain.values[0], domain.values[-1])
        if isinstance(domain, ChoiceDomain)
        else (domain.low, domain.high)
    )
    assert domain.from_unit(0.0) == first and domain.from_unit(-3.0) == first
    assert domain.from_unit(1.0) == last and domain.from_unit(7.0) == last


def test_scalars_in_scalars_out_arrays_keep_their_shape():
    grid = np.linspace(0, 1, 6).reshape(2, 3)
    for domain in (FloatDomain(1.0, 2.0), IntDomain(1, 5), ChoiceDomain(("a", "b"))):
        assert domain.from_unit(grid).shape == (2, 3)
        assert not isinstance(domain.from_unit(0.3), np.ndarray)
        assert domain.to_unit(domain.from_unit(grid)).shape == (2, 3)
    assert type(FloatDomain(1.0, 2.0).to_unit(1.5)) is float
    assert type(FloatDomain(1.0, 2.0).from_unit(0.5)) is float
    assert type(IntDomain(1, 5).from_unit(0.5)) is int
    assert type(IntDomain(1, 5).to_unit(3)) is float


def test_sample_dtypes():
    rng = np.random.default_rng(0)
    assert FloatDomain(0.0, 1.0).sample(rng, 5).dtype == np.float64
    assert IntDomain(0, 9).sample(rng, 5).dtype == np.int64
    assert ChoiceDomain((1, "a")).sample(rng, 5).dtype == object
    assert FloatDomain(0.0, 1.0).sample(rng, 0).shape == (0,)


def test_choice_to_unit_rejects_a_foreign_value():
    with pytest.raises(ValueError, match="'c' is not one of the choices"):
        ChoiceDomain(("a", "b")).to_unit("c")


# --- properties over random valid domains ------------------------------------------------------


@st.composite
def float_domains(draw: st.DrawFn) -> FloatDomain:
    scale = draw(st.sampled_from(["linear", "log", "reverse_log"]))
    if scale == "linear":
        low = draw(st.floats(-1e3, 1e3))
        return FloatDomain(low, low + draw(st.floats(1e-3, 1e3)))
    if scale == "log":
        low = 10 ** draw(st.floats(-8, 3))
        return FloatDomain(low, low * 10 ** draw(st.floats(1e-3, 8)), "log")
    gap = 10 ** draw(st.floats(-9, -0.5))  # 1 - high: down to momentum 1 - 1e-9
    return FloatDomain(1 - gap * 10 ** draw(st.floats(1e-3, 6)), 1 - gap, "reverse_log")


@st.composite
def int_domains(draw: st.DrawFn) -> IntDomain:
    if draw(st.booleans()):
        low = draw(st.integers(-1000, 1000))
        return IntDomain(low, low + draw(st.integers(1, 1000)))
    low = draw(st.integers(1, 1000))
    return IntDomain(low, low + draw(st.integers(1, 10**6)), "log")


choice_values = st.one_of(
    st.integers(-100, 100),
    st.text(max_size=4),
    st.booleans(),
    st.floats(-1e6, 1e6, allow_nan=False),
)
choice_domains = st.lists(
    choice_values, min_size=1, max_size=8, unique_by=lambda v: (isinstance(v, bool), v)
).map(lambda values: ChoiceDomain(tuple(values)))
domains = st.one_of(float_domains(), int_domains(), choice_domains)
seeds = st.integers(0, 2**32 - 1)


@PROPERTY
@given(domain=domains, seed=seeds)
def test_samples_stay_in_bounds(domain: FloatDomain | IntDomain | ChoiceDomain, seed: int):
    draws = domain.sample(np.random.default_rng(seed), 200)
    assert all(domain.contains(x) for x in draws.tolist())


@PROPERTY
@given(domain=domains, u=st.lists(st.floats(-2, 3), min_size=1, max_size=20))
def test_from_unit_stays_in_bounds(domain: FloatDomain | IntDomain | ChoiceDomain, u: list[float]):
    assert all(domain.contains(x) for x in np.asarray(domain.from_unit(np.array(u))).tolist())


@PROPERTY
@given(domain=float_domains(), seed=seeds)
def test_float_round_trip(domain: FloatDomain, seed: int):
    x = domain.sample(np.random.default_rng(seed), 50)
    # rtol 1e-9 of the larger bound: a linear round trip (x - low) / w * w + low loses absolute
    # precision of a few ulps of |low|, which is relative to the bounds, not to x near 0.
    atol = 1e-9 * max(abs(domain.low), abs(domain.high))
    np.testing.assert_allclose(domain.from_unit(domain.to_unit(x)), x, rtol=1e-9, atol=atol)


@PROPERTY
@given(domain=float_domains(), seed=seeds)
def test_float_to_unit_is_increasing(domain: FloatDomain, seed: int):
    x = np.sort(domain.sample(np.random.default_rng(seed), 50))
    assert np.all(np.diff(domain.to_unit(x)) >= 0)
    assert domain.to_unit(domain.low) < domain.to_unit(domain.high)


@PROPERTY
@given(domain=int_domains(), seed=seeds)
def test_int_round_trip_is_exact(domain: IntDomain, seed: int):
    k = np.concatenate([[domain.low, domain.high], domain.sample(np.random.default_rng(seed), 50)])
    np.testing.assert_array_equal(domain.from_unit(domain.to_unit(k)), k)


@PROPERTY
@given(domain=choice_domains)
def test_choice_round_trip_is_exact(domain: ChoiceDomain):
    for value in domain.values:
        back = domain.from_unit(domain.to_unit(value))
        assert back == value and type(back) is type(value)


# --- distributions (seeded; tolerances at the top of the module) -------------------------------


def test_log_scale_gives_each_decade_a_quarter():
    lr = FloatDomain(1e-4, 1.0, "log").sample(np.random.default_rng(1), N_DRAWS)
    counts, _ = np.histogram(lr, bins=[1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert stats.chisquare(counts).pvalue > 1e-3
    assert all(within_sd(c, N_DRAWS, 0.25) for c in counts)


def test_reverse_log_halves_beta_at_0_99():
    beta = FloatDomain(0.9, 0.999, "reverse_log").sample(np.random.default_rng(2), N_DRAWS)
    assert within_sd(int(np.sum(beta < 0.99)), N_DRAWS, 0.5)


def test_reverse_log_makes_one_minus_beta_log_uniform():
    beta = FloatDomain(0.9, 0.99999, "reverse_log").sample(np.random.default_rng(3), N_DRAWS)
    counts, _ = np.histogram(1 - beta, bins=[1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    assert stats.chisquare(counts).pvalue > 1e-3


def test_linear_scale_crowds_beta_below_0_99():
    """The contrast that motivates reverse_log: ~91% of linear draws land in 0.9-0.99."""
    beta = FloatDomain(0.9, 0.999).sample(np.random.default_rng(4), N_DRAWS)
    assert within_sd(int(np.sum(beta < 0.99)), N_DRAWS, 0.09 / 0.099)


def test_int_log_masses_follow_the_cells():
    k = IntDomain(1, 10, "log").sample(np.random.default_rng(5), N_DRAWS)
    values = np.arange(1, 11)
    mass = np.log((values + 0.5) / (values - 0.5)) / np.log(10.5 / 0.5)
    counts = np.array([np.sum(k == v) for v in values])
    assert counts.sum() == N_DRAWS
    assert stats.chisquare(counts, N_DRAWS * mass).pvalue > 1e-3


def test_int_linear_and_choice_are_uniform():
    k = IntDomain(-2, 5).sample(np.random.default_rng(6), N_DRAWS)
    assert stats.chisquare(np.bincount(k + 2, minlength=8)).pvalue > 1e-3
    c = ChoiceDomain(("a", "b", "c")).sample(np.random.default_rng(7), N_DRAWS)
    assert stats.chisquare([np.sum(c == v) for v in "abc"]).pvalue > 1e-3
