"""The re-tune's planning and decision rules, without Ray: budget, good region, plan, judge."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from search_spaces import SearchSpace
from sweeps import parse_spec
from sweeps._errors import SpecError
from sweeps.retune._retune_plan import (
    EXPLORE,
    INCUMBENT,
    LOCAL,
    full_budget,
    good_region,
    judge,
    plan_retune,
    point_in_space,
    resolve_budget,
)
from sweeps.spec import RetuneSpec

SPACE = SearchSpace.from_dict(
    {
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
        "batch_size": {"type": "choice", "values": [32, 64, 128, 256]},
    }
)


def _history(lrs: list[float], scores: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"lr": lrs, "batch_size": [64] * len(lrs), "val_accuracy": scores})


@pytest.mark.parametrize(
    ("strategy", "full"),
    [
        ("{kind: random, samples: 40}", 40),
        ("{kind: sobol, samples: 16}", 16),
        ("{kind: coarse_to_fine, rounds: 3, per_round: 20}", 60),
        ("{kind: grid, points: 5}", 20),  # 5 lr values x 4 batch sizes
    ],
)
def test_full_budget_is_the_strategy_count(strategy: str, full: int) -> None:
    sweep = parse_spec(
        "name: x\nsearch_space:\n  lr: {type: float, low: 1.0e-4, high: 1.0, scale: log}\n"
        "  batch_size: {type: choice, values: [32, 64, 128, 256]}\n"
        f"strategy: {strategy}\n"
    )
    assert full_budget(sweep.spec, sweep.space) == full


def test_budget_is_a_share_rounded_up_or_a_count() -> None:
    assert resolve_budget(RetuneSpec(budget=0.25), 40) == 10
    assert resolve_budget(RetuneSpec(budget=0.1), 15) == 2  # ceil(1.5)
    assert resolve_budget(RetuneSpec(budget=0.01), 10) == 2  # always one newcomer
    assert resolve_budget(RetuneSpec(budget=1), 64) == 1  # a count: only the incumbent
    assert resolve_budget(RetuneSpec(budget=1.0), 64) == 64


def test_good_region_spans_the_top_share_padded_and_clipped() -> None:
    # unit lr of 1e-3, 1e-2, 1e-1, 1 is 0.25, 0.5, 0.75, 1.0; the top half is 1e-2 and 1e-1
    history = _history([1e-3, 1e-2, 1e-1, 1.0, 1e-4, 3e-4, 2e-3, 0.5], [0.5, 0.8, 0.9] + [0.1] * 5)
    low, high = good_region(SPACE, history, "val_accuracy", "max", top=0.25, margin=0.1)
    assert low[0] == pytest.approx(0.4) and high[0] == pytest.approx(0.85)
    low, high = good_region(SPACE, history, "val_accuracy", "min", top=0.25, margin=0.1)
    assert high[0] == 1.0  # minimising: the 0.1 scores win, up to lr = 1 (clipped at 1)


def test_history_outside_the_space_still_points_the_way() -> None:
    # recorded under wider bounds: lr = 10 lies beyond high = 1, and a choice no longer offered
    history = pd.DataFrame(
        {
            "lr": [10.0, 5.0, 3.0, 1e-3],
            "batch_size": [64, 512, 64, 64],
            "val_accuracy": [0.9, 0.95, 0.85, 0.1],
        }
    )
    low, high = good_region(SPACE, history, "val_accuracy", "max", top=0.5, margin=0.0)
    assert low[0] == high[0] == 1.0  # clipped to the edge; the batch_size=512 row is dropped
    assert point_in_space(SPACE, {"lr": 10.0, "batch_size": 64}) == {"lr": 1.0, "batch_size": 64}
    inside = {"lr": 0.0123, "batch_size": 128}
    assert point_in_space(SPACE, {**inside, "beta": 0.9}) == inside  # re-run exactly


def test_plan_is_incumbent_then_local_then_explore() -> None:
    history = _history([1e-3, 1e-2, 1e-1, 1.0], [0.5, 0.8, 0.9, 0.1])
    settings = RetuneSpec(explore=0.25, top=0.5, margin=0.05)
    incumbent = {"lr": 0.1, "batch_size": 64}
    rng = np.random.default_rng(0)
    plan = plan_retune(
        SPACE, incumbent, history, settings, 9, rng, metric="val_accuracy", mode="max"
    )
    origins = [origin for _, origin in plan]
    assert origins == [INCUMBENT] + [LOCAL] * 6 + [EXPLORE] * 2
    assert plan[0][0] == incumbent
    for params, origin in plan:
        SPACE.check_config(params)
        if origin == LOCAL:  # inside [1e-2, 1e-1] widened by 0.05 unit = 0.2 decade
            assert 10**-2.2 - 1e-12 <= float(params["lr"]) <= 10**-0.8 + 1e-12  # type: ignore[arg-type]
    again = plan_retune(
        SPACE, incumbent, history, settings, 9, np.random.default_rng(0),
        metric="val_accuracy", mode="max",
    )  # fmt: skip
    assert again == plan  # seeded


def test_plan_of_one_only_rechecks_the_incumbent() -> None:
    history = _history([1e-2], [0.8])
    plan = plan_retune(
        SPACE, {"lr": 1e-2, "batch_size": 64}, history, RetuneSpec(), 1,
        np.random.default_rng(0), metric="val_accuracy", mode="max",
    )  # fmt: skip
    assert [origin for _, origin in plan] == [INCUMBENT]


def test_judge_flags_drift_by_the_incumbents_own_drop() -> None:
    rules = {"drift_threshold": 0.02, "min_improvement": 0.01}
    same = judge(0.9, 0.9, 0.905, False, mode="max", **rules)
    assert same.drop == 0 and not same.drift and same.keep  # a newcomer within noise: kept
    better = judge(0.9, 0.9, 0.95, False, mode="max", **rules)
    assert not better.drift and not better.keep
    drifted = judge(0.9, 0.6, 0.8, False, mode="max", **rules)
    assert drifted.drift and drifted.drop == pytest.approx(0.3) and not drifted.keep
    still_best = judge(0.9, 0.6, 0.6, True, mode="max", **rules)
    assert still_best.drift and still_best.keep
    # minimising a loss: a rise is the drop
    loss = judge(0.30, 0.40, 0.35, False, mode="min", **rules)
    assert loss.drift and loss.drop == pytest.approx(0.10) and not loss.keep
    improved = judge(0.30, 0.25, 0.25, True, mode="min", **rules)
    assert improved.drop == pytest.approx(-0.05) and not improved.drift
    # the incumbent no longer trains at all: drift, and any success replaces it
    gone = judge(0.9, None, 0.2, False, mode="max", **rules)
    assert gone.drift and math.isinf(gone.drop) and not gone.keep


def test_a_share_needs_a_strategy_with_a_count() -> None:
    with pytest.raises(SpecError, match=r"retune\.budget: .* give a count"):
        resolve_budget(RetuneSpec(budget=0.5), None)
    assert resolve_budget(RetuneSpec(budget=8), None) == 8
