"""Samplers: Sobol's evenness and its sequence, and the comparison grid. The contract every
sampler meets is tests/search_spaces/test_sampler_contract.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import qmc

from search_spaces import (
    ChoiceDomain,
    FloatDomain,
    IntDomain,
    RandomSampler,
    SearchSpace,
    SearchSpaceError,
    SobolSampler,
    grid_points,
)

SPACE = SearchSpace(
    {
        "lr": FloatDomain(1e-4, 1.0, "log"),
        "beta": FloatDomain(0.9, 0.999, "reverse_log"),
        "hidden": IntDomain(16, 512, "log"),
        "batch_size": ChoiceDomain((32, 64, 128, 256)),
    }
)
SQUARE = SearchSpace({"x": FloatDomain(0.0, 1.0), "y": FloatDomain(0.0, 1.0)})


# --- Sobol ----------------------------------------------------------------------------------


def test_sobol_is_more_even_than_random():
    """Seeds fixed; at n=256 the gap is wide: scrambled Sobol is ~100x lower (1e-5 vs 1e-3)."""
    n = 256
    sobol = np.array([SQUARE.to_unit(c) for c in SobolSampler(11).sample(SQUARE, n)])
    random = np.array([SQUARE.to_unit(c) for c in RandomSampler(11).sample(SQUARE, n)])
    assert qmc.discrepancy(sobol) < qmc.discrepancy(random)


def test_sobol_continues_its_sequence():
    sampler = SobolSampler(2)
    halves = sampler.sample(SPACE, 128) + sampler.sample(SPACE, 128)
    assert halves == SobolSampler(2).sample(SPACE, 256)


def test_sobol_points_are_scipys_sequence_seen_through_the_scales():
    configs = SobolSampler(9).sample(SQUARE, 16)
    expected = qmc.Sobol(2, scramble=True, seed=9).random(16)
    np.testing.assert_allclose([SQUARE.to_unit(c) for c in configs], expected, atol=1e-12)
    lr = [c["lr"] for c in SobolSampler(9).sample(SPACE, 16)]
    u = qmc.Sobol(4, scramble=True, seed=9).random(16)[:, 0]
    np.testing.assert_allclose(lr, 1e-4 * 1e4**u, rtol=1e-9)  # geometric in lr


def test_sobol_does_not_warn_for_any_n():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SobolSampler(0).sample(SPACE, 100)


def test_sobol_refuses_to_change_dimension():
    sampler = SobolSampler(0)
    sampler.sample(SQUARE, 4)
    with pytest.raises(ValueError, match="2-D sequence"):
        sampler.sample(SPACE, 4)


# --- grid ---------------------------------------------------------------------------------------


def test_grid_sizes_and_order():
    grid = grid_points(SPACE, 3)
    # lr and beta: 3 points each; hidden: 3 distinct ints; batch_size: all 4 values.
    assert len(grid) == 3 * 3 * 3 * 4
    assert grid[0] == {"lr": 1e-4, "beta": 0.9, "hidden": 16, "batch_size": 32}
    assert grid[1]["batch_size"] == 64  # the last parameter varies fastest
    assert grid[-1] == {"lr": 1.0, "beta": 0.999, "hidden": 512, "batch_size": 256}
    assert grid == grid_points(SPACE, 3)
    for config in grid:
        SPACE.check_config(config)


def test_grid_is_even_in_unit_coordinates():
    space = SearchSpace({"lr": FloatDomain(1e-4, 1.0, "log"), "x": FloatDomain(-1.0, 1.0)})
    grid = grid_points(space, 5)
    lrs = sorted({c["lr"] for c in grid})
    np.testing.assert_allclose(lrs, [1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-12)
    np.testing.assert_allclose(np.array(lrs[1:]) / lrs[:-1], 10.0)  # geometric
    assert sorted({c["x"] for c in grid}) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    beta = grid_points(SearchSpace({"b": FloatDomain(0.9, 0.999, "reverse_log")}), 3)
    np.testing.assert_allclose([c["b"] for c in beta], [0.9, 0.99, 0.999], rtol=1e-12)


def test_grid_keeps_distinct_integers():
    space = SearchSpace({"k": IntDomain(1, 3), "h": IntDomain(1, 1000, "log")})
    assert sorted({c["k"] for c in grid_points(space, 7)}) == [1, 2, 3]
    # An int's unit coordinate spans its cells, log-spaced from 0.5 to 1000.5 (ratio 2001^(1/3)),
    # so the grid is 0.5, 6.3, 79.4, 1000.5 rounded, not the decades.
    assert sorted({c["h"] for c in grid_points(space, 4)}) == [1, 6, 79, 1000]


@pytest.mark.parametrize("points", [1, 0, -3, True, 2.5, "3"])
def test_grid_needs_two_points(points: object):
    with pytest.raises(SearchSpaceError) as info:
        grid_points(SPACE, points)  # type: ignore[arg-type]
    assert info.value.problems[0].field == "points"
    assert repr(points) in str(info.value)
