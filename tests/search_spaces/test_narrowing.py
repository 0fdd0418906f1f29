"""Properties of coarse-to-fine narrowing for any space and any results (hypothesis), through
`CoarseToFine`'s public ask/tell; tests/search_spaces/test_coarse_to_fine.py has the examples.

What `search_spaces/_narrowing.py` and `CoarseToFine` document, for random bounds, scales,
samplers, modes and scores (failed runs among them):

- every round's bounds lie inside the space's: floats with a side of at least `min_window` in
  unit coordinates, integers whole with at least two values, choices a non-empty subset;
- the box is centred on the incumbent ("a box around the incumbent", panned back inside rather
  than clipped): the best configuration so far lies inside the next round's bounds, and a choice
  keeps the values the elite (the best quarter) uses. The incumbent is the best since the last
  restart, so the rounds drawn here are too few for a restart (the window halves at most once a
  round from 1/2 and restarts below 1/64: seven failed rounds);
- `ask()` stays inside the bounds `narrowed_space()` announced for the round;
- a `state_dict` taken at any moment, through JSON, resumes with the same next asks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from _spaces import check_types, spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_spaces import (
    ChoiceDomain,
    CoarseToFine,
    FloatDomain,
    IntDomain,
    SearchSpace,
    SearchSpaceError,
)

Config = dict[str, object]
PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MIN_WINDOW = 1.0 / 64  # CoarseToFine's default

# A score, or (one time in four) a failed run: None, NaN or an infinity, which rank worst in
# either mode. `one_of` picks a branch uniformly, hence the finite branch three times.
_finite = st.floats(-1e3, 1e3)
scores = st.one_of(
    _finite, _finite, _finite, st.sampled_from([None, math.nan, math.inf, -math.inf])
)


@dataclass(frozen=True)
class Drawn:
    search: CoarseToFine
    mode: str
    per_round: int


@st.composite
def searches(draw: st.DrawFn) -> Drawn:
    mode = draw(st.sampled_from(["min", "max"]))
    per_round = draw(st.integers(1, 10))
    search = CoarseToFine(
        draw(spaces(max_size=4)),
        rounds=draw(st.integers(2, 5)),
        per_round=per_round,
        seed=draw(st.integers(0, 2**32 - 1)),
        mode=mode,  # type: ignore[arg-type]
        sampler=draw(st.sampled_from(["random", "sobol", "model"])),
    )
    return Drawn(search, mode, per_round)


def _scores(data: st.DataObject, n: int) -> list[float | None]:
    return data.draw(st.lists(scores, min_size=n, max_size=n))


def _tell_round(data: st.DataObject, search: CoarseToFine, configs: Sequence[Config]) -> None:
    search.tell(configs, _scores(data, len(configs)))


def _loss(score: float | None, mode: str) -> float:
    if score is None or not math.isfinite(score):
        return math.inf
    return score if mode == "min" else -score


def _inside(config: Config, space: SearchSpace) -> None:
    space.check_config(config)  # every value inside the (narrowed) space's bounds


@PROPERTY
@given(drawn=searches(), data=st.data())
def test_every_round_s_bounds_lie_inside_the_space(drawn: Drawn, data: st.DataObject) -> None:
    search, space = drawn.search, drawn.search.space
    while not search.finished:
        _tell_round(data, search, search.ask())
    assert len(search.bounds) == search.rounds
    for bounds in search.bounds:
        assert bounds is not None
        for name, domain in space.domains.items():
            if isinstance(domain, ChoiceDomain):
                allowed = bounds[name]
                assert isinstance(allowed, list) and allowed
                assert all(v in domain.values for v in allowed)
                assert len(set(allowed)) == len(allowed)
                continue
            low, high = bounds[name]  # type: ignore[misc]
            assert domain.low <= low < high <= domain.high, (name, bounds[name])
            if isinstance(domain, IntDomain):
                assert type(low) is int and type(high) is int
            else:
                width = float(domain.to_unit(high)) - float(domain.to_unit(low))
                assert width >= MIN_WINDOW * (1 - 1e-9), (name, bounds[name])


@PROPERTY
@given(drawn=searches(), data=st.data())
def test_the_next_bounds_hold_the_incumbent_and_the_elite_s_choices(
    drawn: Drawn, data: st.DataObject
) -> None:
    search, space = drawn.search, drawn.search.space
    assert search.rounds <= 7  # no restart: the incumbent is the best of all told
    told: list[tuple[Config, float]] = []
    while True:
        configs = search.ask()
        chosen = _scores(data, len(configs))
        search.tell(configs, chosen)
        told += [(c, _loss(s, drawn.mode)) for c, s in zip(configs, chosen, strict=True)]
        if search.finished:
            break
        narrowed = search.narrowed_space()  # the next round's box
        if search.best is None:  # nothing scored yet: the whole space again
            assert narrowed == space
            continue
        _inside(search.best[0], narrowed)
        # the elite, as the narrowing ranks it: finite losses, best first, ties in told order
        finite = sorted((c for c in told if math.isfinite(c[1])), key=lambda c: c[1])
        assert finite[0][0] == search.best[0]
        elite = finite[: max(1, math.ceil(0.25 * len(finite)))]
        for name, domain in narrowed.domains.items():
            if isinstance(domain, ChoiceDomain):
                assert {c[name] for c, _ in elite} <= set(domain.values), name


@PROPERTY
@given(drawn=searches(), data=st.data())
def test_ask_stays_inside_the_bounds_narrowed_space_announced(
    drawn: Drawn, data: st.DataObject
) -> None:
    search = drawn.search
    while not search.finished:
        announced = search.narrowed_space()
        configs = search.ask()
        assert len(configs) == drawn.per_round
        assert search.narrowed_space() == announced  # asking does not move the box
        bounds = search.bounds[-1]
        assert bounds is not None
        for config in configs:
            check_types(search.space, config)
            _inside(config, announced)
            for name, domain in announced.domains.items():
                if isinstance(domain, FloatDomain | IntDomain):
                    assert (domain.low, domain.high) == bounds[name]
        _tell_round(data, search, configs)


@PROPERTY
@given(drawn=searches(), data=st.data())
def test_a_state_dict_through_json_resumes_with_the_same_asks(
    drawn: Drawn, data: st.DataObject
) -> None:
    """Taken between rounds or mid-round, after some of the round is told (a crash while its
    trials run): the resumed search asks what the original asks, round after round."""
    search = drawn.search
    crash_round = data.draw(st.integers(0, search.rounds - 1))
    for _ in range(crash_round):
        _tell_round(data, search, search.ask())
    pending = search.ask()
    told = data.draw(st.integers(0, len(pending)))
    _tell_round(data, search, pending[:told])

    state = json.loads(json.dumps(search.state_dict(), allow_nan=False))
    resumed = CoarseToFine.from_state_dict(state)
    assert resumed.state_dict() == search.state_dict()
    assert resumed.round == search.round and resumed.bounds == search.bounds
    assert resumed.best == search.best

    rest = _scores(data, len(pending) - told)
    for s in (search, resumed):
        s.tell(pending[told:], rest)
    while not search.finished:
        configs = search.ask()
        assert resumed.ask() == configs
        chosen = _scores(data, len(configs))
        for s in (search, resumed):
            s.tell(configs, chosen)
    assert resumed.finished and resumed.state_dict() == search.state_dict()


def test_the_incumbent_check_can_fail() -> None:
    """`_inside` refuses a configuration outside a narrowed space (the property above is not
    vacuous): a bowl's narrowed box around lr = 1e-2 excludes lr = 1."""
    space = SearchSpace({"lr": FloatDomain(1e-4, 1.0, "log")})
    search = CoarseToFine(space, rounds=3, per_round=8, seed=0, sampler="random")
    configs = search.ask()
    search.tell(configs, [abs(math.log10(float(c["lr"])) + 2) for c in configs])  # type: ignore[arg-type]
    with pytest.raises(SearchSpaceError, match="must lie in"):
        _inside({"lr": 1.0}, search.narrowed_space())
