"""A packed trial's config: parsing, every error at once with its field path, halving rule."""

from __future__ import annotations

import pytest

from trainables import (
    EpochResult,
    HParams,
    HyperParameterError,
)
from trainables.packing import (
    MEMBER_METRICS,
    PackConfig,
    SuccessiveHalving,
    member_metrics,
    pack_config_errors,
)

MEMBER = {"member_id": "a", "dataset": "digits", "epochs": 5, "seed": 1, "lr": 0.1}


def _errors(config: dict) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in pack_config_errors(config)]


def test_members_parse_into_trial_configs() -> None:
    config = {
        "members": [MEMBER, {**MEMBER, "member_id": "b", "seed": 2, "hidden": 32}],
        "early_stopping": {"metric": "val_loss", "grace_period": 2},
    }
    pack = PackConfig.from_config(config)
    assert [m.member_id for m in pack.members] == ["a", "b"]
    assert pack.members[1].trial.hparams == HParams(lr=0.1, hidden=32)
    assert (pack.dataset, pack.epochs, pack.val_fraction) == ("digits", 5, 0.2)
    assert pack.early_stopping == SuccessiveHalving("val_loss", "min", 2, 3.0)
    assert PackConfig.from_config({"members": [MEMBER]}).early_stopping is None


def test_every_problem_is_reported_with_its_field_path() -> None:
    config = {
        "members": [
            MEMBER,
            {**MEMBER, "member_id": "a", "lr": -1.0},
            {**MEMBER, "member_id": "c", "epochs": 6, "dataset": "synthetic"},
            {"lr": 0.1},
            "not a mapping",
        ],
        "extra": 1,
    }
    errors = dict(_errors(config))
    assert errors.keys() == {
        "extra",
        "members[1].member_id",
        "members[1].lr",
        "members[2].epochs",
        "members[2].dataset",
        "members[3].member_id",
        "members[3].epochs",
        "members[4]",
    }  # fmt: skip  (members[3] gets the default epochs, 20, which differs too)
    assert "unknown pack setting" in errors["extra"]
    assert errors["members[1].member_id"] == "must be unique, but members[0] has it too"
    assert errors["members[2].epochs"].startswith("must equal members[0].epochs=5")
    assert "share model, dataset, val_fraction, epochs" in errors["members[2].epochs"]
    with pytest.raises(HyperParameterError, match=r"^extra: unknown pack setting"):
        PackConfig.from_config(config)


@pytest.mark.parametrize("members", [None, [], "abc"])
def test_members_must_be_a_non_empty_list(members: object) -> None:
    assert _errors({"members": members}) == [
        ("members", "must be a non-empty list of member configs")
    ]


@pytest.mark.parametrize(
    ("stopping", "field"),
    [
        ({"metric": "accuracy"}, "early_stopping.metric"),
        ({"mode": "up"}, "early_stopping.mode"),
        ({"grace_period": 0}, "early_stopping.grace_period"),
        ({"reduction_factor": 1}, "early_stopping.reduction_factor"),
        ({"rungs": 3}, "early_stopping.rungs"),
        ([1], "early_stopping"),
    ],
)
def test_bad_early_stopping_is_reported(stopping: object, field: str) -> None:
    assert [f for f, _ in _errors({"members": [MEMBER], "early_stopping": stopping})] == [field]


def _result(epoch: int, accuracy: float, diverged: bool = False) -> EpochResult:
    return EpochResult(epoch, 1.0, 1.0 - accuracy, accuracy, 0.1, diverged)


def test_successive_halving_rungs() -> None:
    rule = SuccessiveHalving(grace_period=2, reduction_factor=3)
    assert [e for e in range(1, 60) if rule.is_rung(e)] == [2, 6, 18, 54]


def test_successive_halving_keeps_the_best_third_of_the_live_members() -> None:
    rule = SuccessiveHalving(metric="val_accuracy", grace_period=1, reduction_factor=3)
    results = {i: _result(1, accuracy) for i, accuracy in enumerate([0.5, 0.9, 0.7, 0.8, 0.6])}
    results[5] = _result(1, 0.0, diverged=True)
    assert rule.stops(1, results, epochs=10) == {0, 2, 4}  # keeps ceil(5 / 3) = 2: 1 and 3
    assert rule.stops(2, results, epochs=10) == set()  # not a rung
    assert rule.stops(1, results, epochs=1) == set()  # the last epoch: nothing to save
    by_loss = SuccessiveHalving(metric="val_loss", reduction_factor=2)
    assert by_loss.stops(1, results, epochs=10) == {0, 4}  # lowest loss = highest accuracy


def test_member_metrics_follow_the_documented_keys() -> None:
    entry = member_metrics("m7", _result(3, 0.9), stopped=True)
    assert tuple(entry) == MEMBER_METRICS
    assert entry["member_id"] == "m7" and entry["epoch"] == 3 and entry["stopped"] is True
