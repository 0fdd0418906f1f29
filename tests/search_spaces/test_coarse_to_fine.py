"""CoarseToFine: its contract as an ask/tell strategy, the narrowing's invariants, and resuming.

Objectives are cheap functions of the unit coordinates, so every assertion about search quality
is deterministic for the fixed seeds used; tolerances are stated where they are not obvious.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from search_spaces import (
    ChoiceDomain,
    CoarseToFine,
    FloatDomain,
    IntDomain,
    SearchSpace,
    SearchSpaceError,
)

SPACE = SearchSpace(
    {
        "lr": FloatDomain(1e-4, 1.0, "log"),
        "beta": FloatDomain(0.9, 0.999, "reverse_log"),
        "hidden": IntDomain(16, 512, "log"),
        "batch_size": ChoiceDomain((32, 64, 128, 256)),
    }
)
SAMPLERS = ["random", "sobol", "model"]
TARGET = np.array([0.3, 0.8, 0.6])  # unit coordinates of the bowl's minimum (lr, beta, hidden)


def bowl(config: dict) -> float:
    """A quadratic bowl in unit coordinates; batch_size 64 is the best choice."""
    u = SPACE.to_unit(config)[:3]
    return float(np.sum((u - TARGET) ** 2)) + (0.0 if config["batch_size"] == 64 else 0.05)


def run(search: CoarseToFine, objective: Callable[[dict], float]) -> list[list[dict]]:
    asked = []
    while not search.finished:
        configs = search.ask()
        asked.append(configs)
        search.tell(configs, [objective(c) for c in configs])
    return asked


def unit_width(domain: FloatDomain | IntDomain, low: float, high: float) -> float:
    return float(domain.to_unit(high) - domain.to_unit(low))


# --- construction -----------------------------------------------------------------------------


def test_every_invalid_argument_is_reported_at_once_with_its_value():
    with pytest.raises(SearchSpaceError) as err:
        CoarseToFine(SPACE, rounds=0, per_round=2.5, seed=-1, mode="maximize", sampler="tpe")
    fields = {p.field: p.value for p in err.value.problems}
    assert fields == {
        "rounds": 0,
        "per_round": 2.5,
        "seed": -1,
        "mode": "maximize",
        "sampler": "tpe",
    }
    assert "got 'maximize'" in str(err.value)


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("initial_window", 0.0),
        ("initial_window", 1.5),
        ("min_window", -0.1),
        ("shrink", 1.2),
        ("expand", 0.5),
        ("failure_rounds", 0),
        ("success_rounds", True),
        ("elite_fraction", 0.0),
        ("improvement", math.nan),
    ],
)
def test_invalid_knobs_are_rejected(knob: str, value: object):
    with pytest.raises(SearchSpaceError) as err:
        CoarseToFine(SPACE, **{knob: value})
    assert err.value.problems[0].field == knob


def test_min_window_above_initial_window_is_rejected():
    with pytest.raises(SearchSpaceError, match="min_window <= initial_window"):
        CoarseToFine(SPACE, initial_window=0.1, min_window=0.2)


def test_space_must_be_a_search_space():
    with pytest.raises(SearchSpaceError, match="space: must be a SearchSpace"):
        CoarseToFine({"lr": FloatDomain(0.0, 1.0)})  # type: ignore[arg-type]


# --- the ask/tell protocol --------------------------------------------------------------------


def test_ask_gives_per_round_valid_configs_and_round_advances_on_full_tell():
    search = CoarseToFine(SPACE, rounds=2, per_round=8, seed=0)
    assert (search.round, search.finished, search.best, search.bounds) == (0, False, None, [])
    configs = search.ask()
    assert len(configs) == 8
    for config in configs:
        SPACE.check_config(config)
    search.tell(configs[:5], [bowl(c) for c in configs[:5]])
    assert search.round == 0  # three still pending
    search.tell(configs[5:], [bowl(c) for c in configs[5:]])
    assert search.round == 1 and not search.finished
    search.tell(*zip(*[(c, bowl(c)) for c in search.ask()], strict=True))
    assert search.finished and len(search.bounds) == 2


def test_asking_again_before_telling_is_an_error_that_says_why():
    search = CoarseToFine(SPACE, rounds=2, per_round=4, seed=0)
    configs = search.ask()
    search.tell(configs[:1], [1.0])
    with pytest.raises(RuntimeError, match="3 of its 4 configurations are not told"):
        search.ask()


def test_close_round_starts_the_next_round_and_late_results_still_count():
    search = CoarseToFine(SPACE, rounds=3, per_round=8, seed=0)
    with pytest.raises(RuntimeError, match="no round is pending"):
        search.close_round()
    configs = search.ask()
    search.tell(configs[:6], [bowl(c) for c in configs[:6]])
    assert search.awaiting == 2
    search.close_round()
    assert (search.round, search.awaiting) == (1, 0)
    second = search.ask()  # the stragglers of round 0 are still out
    late = configs[6:]
    best_late = min(late, key=bowl)
    search.tell(late, [bowl(c) - 10.0 for c in late])  # late, and better than anything seen
    assert search.best is not None and search.best[0] == {k: best_late[k] for k in SPACE.names}
    assert search.round == 1 and search.awaiting == 8  # late tells do not touch round 1
    search.tell(second, [bowl(c) for c in second])
    assert search.round == 2
    restored = CoarseToFine.from_state_dict(json.loads(json.dumps(search.state_dict())))
    assert restored.ask() == search.ask()


def test_asking_when_finished_is_an_error():
    search = CoarseToFine(SPACE, rounds=1, per_round=4, seed=0)
    run(search, bowl)
    with pytest.raises(RuntimeError, match="all 1 rounds are done"):
        search.ask()


def test_tell_rejects_mismatched_lengths_and_unplaceable_configs():
    search = CoarseToFine(SPACE, rounds=1, per_round=4, seed=0)
    good = search.ask()[0]
    with pytest.raises(SearchSpaceError, match="got 1 configs but 2 scores"):
        search.tell([good], [1.0, 2.0])
    with pytest.raises(SearchSpaceError) as err:
        search.tell([{**good, "lr": -1.0}, {"lr": 0.1}], [1.0, 2.0])
    fields = [p.field for p in err.value.problems]
    assert fields[0] == "configs[0].lr" and "configs[1].beta" in fields
    with pytest.raises(SearchSpaceError, match=r"scores\[0\]: must be a number"):
        search.tell([good], ["0.5"])  # type: ignore[list-item]


def test_same_seed_same_search_and_other_seed_another():
    first = run(CoarseToFine(SPACE, rounds=3, per_round=8, seed=4), bowl)
    assert first == run(CoarseToFine(SPACE, rounds=3, per_round=8, seed=4), bowl)
    assert first != run(CoarseToFine(SPACE, rounds=3, per_round=8, seed=5), bowl)


def test_decisions_do_not_depend_on_the_number_of_rounds_left():
    # So adding rounds to a sweep (edit and continue) cannot change the rounds already run.
    short = run(CoarseToFine(SPACE, rounds=3, per_round=8, seed=1), bowl)
    long = run(CoarseToFine(SPACE, rounds=6, per_round=8, seed=1), bowl)
    assert long[:3] == short


# --- narrowing invariants ---------------------------------------------------------------------


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_round_stays_inside_the_space_its_bounds_and_never_empties(sampler: str):
    search = CoarseToFine(SPACE, rounds=6, per_round=8, seed=2, sampler=sampler)
    run(search, bowl)
    for r, bounds in enumerate(search.bounds):
        assert bounds is not None
        for name, domain in SPACE.domains.items():
            if isinstance(domain, ChoiceDomain):
                assert bounds[name] and set(bounds[name]) <= set(domain.values)
            else:
                low, high = bounds[name]
                assert domain.low <= low < high <= domain.high, (r, name, bounds[name])
                assert unit_width(domain, low, high) >= 1 / 64 - 1e-9


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_asked_configs_lie_in_their_rounds_bounds(sampler: str):
    search = CoarseToFine(SPACE, rounds=5, per_round=8, seed=3, sampler=sampler)
    asked = run(search, bowl)
    for configs, bounds in zip(asked, search.bounds, strict=True):
        for config in configs:
            for name, value in config.items():
                if isinstance(bounds[name], list):
                    assert value in bounds[name]
                else:
                    assert bounds[name][0] <= value <= bounds[name][1]


def test_narrowed_space_is_the_round_s_bounds_as_a_space():
    search = CoarseToFine(SPACE, rounds=3, per_round=8, seed=0)
    assert search.narrowed_space() == SPACE  # the first round covers everything
    run(search, bowl)
    narrowed = CoarseToFine(SPACE, rounds=3, per_round=8, seed=0)
    for _ in range(2):
        configs = narrowed.ask()
        narrowed.tell(configs, [bowl(c) for c in configs])
    space = narrowed.narrowed_space()
    asked = narrowed.ask()
    assert narrowed.narrowed_space() == space
    for name, domain in space.domains.items():
        bounds = narrowed.bounds[-1][name]
        if isinstance(domain, ChoiceDomain):
            assert list(domain.values) == bounds
        else:
            assert (domain.low, domain.high) == bounds
    for config in asked:
        space.check_config(config)


def test_windows_never_shrink_below_the_minimum_and_collapse_restarts_the_whole_space():
    # A flat objective never improves, so every round halves the box until it collapses.
    space = SearchSpace({"lr": FloatDomain(1e-4, 1.0, "log"), "bs": ChoiceDomain((1, 2))})
    search = CoarseToFine(space, rounds=12, per_round=4, seed=0, min_window=0.05)
    run(search, lambda c: 1.0)
    widths = [unit_width(space.domains["lr"], *b["lr"]) for b in search.bounds]
    assert min(widths) >= 0.05 - 1e-9
    assert widths[0] == 1.0 and 1.0 in widths[1:]  # a restart went back to the whole space
    assert widths[1] == pytest.approx(0.5) and widths[2] == pytest.approx(0.25)


def test_int_bounds_snap_to_whole_values_and_keep_at_least_two():
    space = SearchSpace({"depth": IntDomain(1, 4), "x": FloatDomain(0.0, 1.0)})
    search = CoarseToFine(space, rounds=8, per_round=4, seed=0, min_window=0.01)
    run(search, lambda c: (c["depth"] - 4) ** 2 + (c["x"] - 0.5) ** 2)
    for bounds in search.bounds[1:]:
        low, high = bounds["depth"]
        assert isinstance(low, int) and 1 <= low < high <= 4
    assert search.bounds[-1]["depth"] == (3, 4)


def test_a_choice_keeps_the_values_good_points_use():
    search = CoarseToFine(SPACE, rounds=4, per_round=16, seed=0)
    run(search, bowl)
    assert all(64 in b["batch_size"] for b in search.bounds)
    assert len(search.bounds[-1]["batch_size"]) < 4  # and drops some that are not


# --- search quality on a bowl -----------------------------------------------------------------


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_box_closes_in_on_a_bowl_s_minimum_and_the_best_improves(sampler: str):
    search = CoarseToFine(SPACE, rounds=6, per_round=16, seed=0, sampler=sampler)
    bests = []
    while not search.finished:
        configs = search.ask()
        search.tell(configs, [bowl(c) for c in configs])
        bests.append(search.best[1])
    assert bests == sorted(bests, reverse=True) and bests[-1] < bests[0] / 4
    optimum = SPACE.from_unit([*TARGET, 0.375])
    search_space = search.narrowed_space()
    search_space.check_config(optimum)  # raises if the box lost the minimum
    lr = search.bounds[-1]["lr"]
    assert unit_width(SPACE.domains["lr"], *lr) < 0.5


def test_coarse_to_fine_beats_random_search_on_the_bowl():
    # Same budget (96), 5 paired seeds: median best of coarse-to-fine at least 4x lower.
    ours, random = [], []
    for seed in range(5):
        search = CoarseToFine(SPACE, rounds=6, per_round=16, seed=seed)
        run(search, bowl)
        ours.append(search.best[1])
        random.append(min(bowl(c) for c in SPACE.sample(np.random.default_rng(seed), 96)))
    assert np.median(ours) * 4 < np.median(random)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_an_optimum_on_the_edge_of_the_space_is_reached(sampler: str):
    # Best at the top of lr and at the bottom of beta: the box must pan there, not shrink away.
    def edge(config: dict) -> float:
        u = SPACE.to_unit(config)
        return float((1 - u[0]) ** 2 + u[1] ** 2 + (u[2] - 0.5) ** 2)

    search = CoarseToFine(SPACE, rounds=8, per_round=16, seed=1, sampler=sampler)
    run(search, edge)
    assert search.best[1] < 0.01
    bounds = search.bounds[-1]
    assert bounds["lr"][1] == 1.0 and bounds["beta"][0] == 0.9


def test_a_noisy_bowl_keeps_the_search_within_the_noise_level_of_the_minimum():
    # Noise sd 0.02 (seed 0) hides the bowl within ~0.14 of its minimum. The box may settle
    # anywhere in that zone (a known limit: no re-evaluation), but not away from it.
    noise = np.random.default_rng(0)
    search = CoarseToFine(SPACE, rounds=6, per_round=16, seed=0)
    run(search, lambda c: bowl(c) + noise.normal(0.0, 0.02))
    assert bowl(search.best[0]) < 0.05
    bounds = search.bounds[-1]
    low = np.array([SPACE.domains[n].to_unit(bounds[n][0]) for n in ("lr", "beta", "hidden")])
    high = np.array([SPACE.domains[n].to_unit(bounds[n][1]) for n in ("lr", "beta", "hidden")])
    assert np.linalg.norm(np.maximum(0.0, np.maximum(low - TARGET, TARGET - high))) < 0.15


# --- failures, modes, initial points ----------------------------------------------------------


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_nan_inf_and_none_scores_rank_worst(sampler: str):
    # Learning rates above 0.01 "diverge"; the search must settle among the finite ones.
    def diverging(config: dict) -> float:
        if config["lr"] > 0.01:
            return [math.nan, math.inf, -math.inf][int(config["hidden"]) % 3]
        return bowl(config)

    search = CoarseToFine(SPACE, rounds=5, per_round=16, seed=0, sampler=sampler)
    run(search, diverging)
    config, score = search.best
    assert math.isfinite(score) and config["lr"] <= 0.01
    assert search.bounds[-1]["lr"][0] < 0.01
    search = CoarseToFine(SPACE, rounds=2, per_round=4, seed=0)
    configs = search.ask()
    search.tell(configs, [None, math.nan, math.inf, -math.inf])  # a round with no result at all
    assert search.round == 1 and search.best is None
    assert len(search.ask()) == 4


def test_mode_max_is_the_mirror_of_min():
    low = CoarseToFine(SPACE, rounds=4, per_round=8, seed=0)
    high = CoarseToFine(SPACE, rounds=4, per_round=8, seed=0, mode="max")
    assert run(low, bowl) == run(high, lambda c: -bowl(c))
    assert high.best[0] == low.best[0] and high.best[1] == -low.best[1]


def test_configs_that_were_never_asked_inform_the_narrowing():
    search = CoarseToFine(SPACE, rounds=2, per_round=8, seed=0)
    known = SPACE.from_unit([0.3, 0.8, 0.6, 0.375])  # the bowl's minimum, e.g. an `initial` point
    search.tell([known], [bowl(known)])
    configs = search.ask()
    search.tell(configs, [bowl(c) for c in configs])
    assert search.best == (known, bowl(known))
    search.narrowed_space().check_config(known)


# --- persistence and edit-and-continue --------------------------------------------------------


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_state_dict_round_trip_through_json_resumes_identically(sampler: str):
    search = CoarseToFine(SPACE, rounds=4, per_round=8, seed=7, sampler=sampler)
    for _ in range(2):
        configs = search.ask()
        search.tell(configs, [bowl(c) if i % 5 else math.nan for i, c in enumerate(configs)])
    configs = search.ask()
    search.tell(configs[:3], [bowl(c) for c in configs[:3]])  # a crash mid-round
    state = json.loads(json.dumps(search.state_dict(), allow_nan=False))
    resumed = CoarseToFine.from_state_dict(state)
    assert resumed.state_dict() == search.state_dict()
    assert (resumed.round, resumed.bounds, resumed.best) == (
        search.round,
        search.bounds,
        search.best,
    )
    for s in (search, resumed):
        s.tell(configs[3:], [bowl(c) for c in configs[3:]])
    assert resumed.ask() == search.ask()


def test_from_state_dict_rejects_other_formats():
    with pytest.raises(SearchSpaceError, match="format"):
        CoarseToFine.from_state_dict({"format": 99})


def test_replay_from_a_wider_space_narrows_from_its_history_but_samples_inside():
    wide = SearchSpace({"lr": FloatDomain(1e-6, 10.0, "log"), "momentum": FloatDomain(0.0, 0.99)})
    narrow = SearchSpace({"lr": FloatDomain(1e-4, 1.0, "log"), "momentum": FloatDomain(0.5, 0.99)})

    def loss(config: dict) -> float:  # best at lr = 3 (outside the new bounds), momentum 0.9
        return (math.log10(config["lr"]) - math.log10(3.0)) ** 2 + (config["momentum"] - 0.9) ** 2

    history = [(c, loss(c)) for c in wide.sample(np.random.default_rng(0), 64)]
    search = CoarseToFine.replay(narrow, history, rounds=6, per_round=16, seed=0)
    assert search.round == 4 and search.bounds == [None] * 4
    assert search.best[1] == min(score for _, score in history)
    configs = search.ask()
    for config in configs:
        narrow.check_config(config)
    lr_low, lr_high = search.bounds[4]["lr"]
    assert lr_high == 1.0 and lr_low > 1e-3  # pushed to the edge nearest the old best
    search.tell(configs, [loss(c) for c in configs])
    assert search.round == 5


def test_replay_with_a_dropped_choice_value_still_persists_as_strict_json():
    wide = SearchSpace({"x": FloatDomain(0.0, 1.0), "opt": ChoiceDomain(("sgd", "adam", "lamb"))})
    narrow = SearchSpace({"x": FloatDomain(0.0, 1.0), "opt": ChoiceDomain(("sgd", "adam"))})

    def loss(config: dict) -> float:  # "lamb" was best, but the edited space dropped it
        return (config["x"] - 0.5) ** 2 + {"sgd": 0.2, "adam": 0.1, "lamb": 0.0}[config["opt"]]

    history = [(c, loss(c)) for c in wide.sample(np.random.default_rng(1), 32)]
    search = CoarseToFine.replay(narrow, history, rounds=6, per_round=8, seed=0)
    state = json.loads(json.dumps(search.state_dict(), allow_nan=False))
    configs = search.ask()
    assert {c["opt"] for c in configs} <= {"sgd", "adam"}
    assert CoarseToFine.from_state_dict(state).ask() == configs


def test_replay_defaults_to_the_whole_rounds_of_history_and_can_finish():
    history = [(c, bowl(c)) for c in SPACE.sample(np.random.default_rng(0), 20)]
    assert CoarseToFine.replay(SPACE, history, rounds=4, per_round=8).round == 2
    assert CoarseToFine.replay(SPACE, history, rounds=2, per_round=8).finished
    assert CoarseToFine.replay(SPACE, history, rounds=4, per_round=8, rounds_done=0).round == 0
    with pytest.raises(SearchSpaceError, match="rounds_done"):
        CoarseToFine.replay(SPACE, history, rounds_done=-1)


def test_the_model_fits_on_one_blas_thread_and_leaves_the_limit_as_it_found_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a node busy with trials, BLAS threads waiting on each other made a round several
    times slower; the GP's matrices are too small for threads to pay."""
    from threadpoolctl import threadpool_info

    from search_spaces import _gaussian_process

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen: list[set[int]] = []
    fit = _gaussian_process.GaussianProcess.fit

    def recording_fit(
        self: _gaussian_process.GaussianProcess, x: np.ndarray, y: np.ndarray
    ) -> _gaussian_process.GaussianProcess:
        seen.append(blas_threads())
        return fit(self, x, y)

    monkeypatch.setattr(_gaussian_process.GaussianProcess, "fit", recording_fit)
    before = blas_threads()
    search = CoarseToFine(SPACE, rounds=3, per_round=8, seed=0, sampler="model")
    while not search.finished:
        configs = search.ask()
        search.tell(configs, [bowl(c) for c in configs])
    assert seen and all(threads == {1} for threads in seen)
    assert blas_threads() == before
