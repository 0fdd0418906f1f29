"""The plan: `initial` first, then the strategy's points, reproducible from the spec's seed."""

from __future__ import annotations

import textwrap

from sweeps import parse_spec, plan_points
from sweeps.plan import trial_seed

BASE = textwrap.dedent(
    """
    name: plan
    search_space:
      lr:   {type: float, low: 1.0e-4, high: 1.0, scale: log}
      beta: {type: float, low: 0.9, high: 0.999, scale: reverse_log}
      batch_size: {type: choice, values: [32, 64]}
    initial: [{lr: 0.01, beta: 0.95, batch_size: 32}]
    """
)


def _plan(strategy: str, seed: int = 0) -> list:
    return plan_points(parse_spec(BASE + f"strategy: {strategy}\nseed: {seed}\n"))


def test_initial_points_come_first_with_their_origin() -> None:
    points = _plan("{kind: random, samples: 5}")
    assert len(points) == 6
    assert points[0].params == {"lr": 0.01, "beta": 0.95, "batch_size": 32}
    assert [p.origin for p in points] == ["initial"] + ["random"] * 5
    assert [p.trial_id for p in points] == [f"t{i:05d}" for i in range(6)]


def test_random_and_sobol_plans_are_reproducible_and_seed_dependent() -> None:
    for kind in ("random", "sobol"):
        a = [p.params for p in _plan(f"{{kind: {kind}, samples: 16}}", seed=1)]
        b = [p.params for p in _plan(f"{{kind: {kind}, samples: 16}}", seed=1)]
        c = [p.params for p in _plan(f"{{kind: {kind}, samples: 16}}", seed=2)]
        assert a == b != c


def test_planned_points_lie_inside_the_space() -> None:
    for strategy in ("{kind: random, samples: 64}", "{kind: sobol, samples: 64}"):
        for p in _plan(strategy):
            assert 1e-4 <= p.params["lr"] <= 1.0
            assert 0.9 <= p.params["beta"] <= 0.999
            assert p.params["batch_size"] in (32, 64)


def test_grid_crosses_every_value() -> None:
    points = _plan("{kind: grid, points: 3}")[1:]
    assert len(points) == 3 * 3 * 2
    assert sorted({round(p.params["lr"], 12) for p in points}) == [1e-4, 1e-2, 1.0]
    assert {p.origin for p in points} == {"grid"}


def test_trial_seeds_are_distinct_and_stable() -> None:
    seeds = [trial_seed(0, i) for i in range(1000)]
    assert len(set(seeds)) == 1000
    assert trial_seed(0, 5) == trial_seed(0, 5) != trial_seed(1, 5)
