"""Panda mode's judgement on its own: keep, raise, roll back, stop; no Ray, no torch."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from sweeps.panda._babysitter import (
    PandaRules,
    SitterState,
    checkpoint_name,
    judge,
    period_length,
)


def _rules(**overrides: object) -> PandaRules:
    values: dict[str, object] = {
        "period": 2,
        "raise_factor": 2.0,
        "lower_factor": 0.5,
        "patience": 3,
        "epochs": 20,
        "mode": "max",
        "lr_low": 1e-3,
        "lr_high": 1.0,
    }
    return PandaRules(**{**values, **overrides})  # type: ignore[arg-type]


def _good(lr: float = 0.1, metric: float = 0.8, epoch: int = 4) -> SitterState:
    return SitterState(
        lr=lr,
        good_epoch=epoch,
        good_metric=metric,
        good_checkpoint="d00001.pt",
        epochs_trained=epoch,
        decisions=2,
    )


def test_the_first_finite_period_is_an_improvement_and_is_kept() -> None:
    state, decisions = judge(
        SitterState(lr=0.1),
        _rules(raise_factor=1.0),
        epoch=2,
        metric=0.3,
        diverged=False,
        epochs_run=2,
    )
    [decision] = decisions
    assert (decision.action, decision.reason, decision.index) == ("keep", "improved", 0)
    assert (decision.lr_before, decision.lr_after) == (0.1, 0.1)
    assert state.good_epoch == 2 and state.good_metric == 0.3
    assert state.good_checkpoint == checkpoint_name(0) == decision.checkpoint
    assert state.epochs_trained == 2 and state.decisions == 1 and not state.stopped


def test_improvement_raises_the_lr_by_the_factor_up_to_the_space_bound() -> None:
    state, [decision] = judge(
        _good(lr=0.1), _rules(), epoch=6, metric=0.9, diverged=False, epochs_run=2
    )
    assert decision.action == "raise" and math.isclose(state.lr, 0.2)
    state, [decision] = judge(
        _good(lr=0.8), _rules(), epoch=6, metric=0.9, diverged=False, epochs_run=2
    )
    assert decision.action == "raise" and state.lr == 1.0
    # already at the bound: nothing to raise, the decision says keep
    state, [decision] = judge(
        _good(lr=1.0), _rules(), epoch=6, metric=0.9, diverged=False, epochs_run=2
    )
    assert decision.action == "keep" and state.lr == 1.0


def test_a_worse_period_rolls_back_to_the_good_checkpoint_with_a_lower_lr() -> None:
    before = _good(lr=0.1, metric=0.8, epoch=4)
    state, [decision] = judge(before, _rules(), epoch=6, metric=0.6, diverged=False, epochs_run=2)
    assert (decision.action, decision.reason) == ("rollback", "worse")
    assert decision.epoch == 6 and decision.metric == 0.6
    assert decision.restored_epoch == 4 and decision.best_metric == 0.8
    assert math.isclose(decision.lr_after, 0.05) and state.lr == decision.lr_after
    assert state.good_checkpoint == before.good_checkpoint and state.good_epoch == 4
    assert state.rollbacks == 1 and state.epochs_trained == 6


def test_a_rollback_that_cannot_lower_the_lr_stops_instead_of_repeating_itself() -> None:
    """From the same checkpoint, RNG included, at the same lr a retry would be an exact copy."""
    state, [_, stop] = judge(
        _good(lr=1e-3), _rules(), epoch=6, metric=0.7, diverged=False, epochs_run=2
    )
    assert (stop.action, stop.reason) == ("stop", "lr_floor") and state.stopped


def test_a_tie_is_not_progress_and_lowering_stops_at_the_space_bound() -> None:
    state, [decision] = judge(
        _good(lr=0.0015), _rules(), epoch=6, metric=0.8, diverged=False, epochs_run=2
    )
    assert decision.action == "rollback" and state.lr == 1e-3


def test_divergence_rolls_back_whatever_the_metric_says() -> None:
    state, [decision] = judge(
        _good(), _rules(), epoch=5, metric=float("nan"), diverged=True, epochs_run=1
    )
    assert (decision.action, decision.reason) == ("rollback", "diverged")
    assert decision.metric is None and state.epochs_trained == 5
    # from the very start, a diverged period goes back to the fresh model (epoch 0)
    state, [decision] = judge(
        SitterState(lr=5.0), _rules(lr_high=10.0), epoch=1, metric=0.1, diverged=True, epochs_run=1
    )
    assert decision.restored_epoch == 0 and state.good_checkpoint is None and state.lr == 2.5


def test_min_mode_improves_downwards() -> None:
    _, [decision] = judge(
        _good(metric=0.5), _rules(mode="min"), epoch=6, metric=0.4, diverged=False, epochs_run=2
    )
    assert decision.action == "raise"
    _, [decision] = judge(
        _good(metric=0.5), _rules(mode="min"), epoch=6, metric=0.6, diverged=False, epochs_run=2
    )
    assert decision.action == "rollback"


def test_patience_consecutive_rollbacks_stop_on_the_good_model() -> None:
    rules = _rules(patience=2)
    state = _good(lr=0.1, metric=0.8, epoch=4)
    state, [first] = judge(state, rules, epoch=6, metric=0.7, diverged=False, epochs_run=2)
    assert first.action == "rollback" and not state.stopped
    state, decisions = judge(state, rules, epoch=6, metric=0.7, diverged=False, epochs_run=2)
    assert [d.action for d in decisions] == ["rollback", "stop"]
    stop = decisions[1]
    assert stop.reason == "patience" and stop.index == decisions[0].index + 1
    assert stop.epoch == stop.restored_epoch == 4 and stop.metric == stop.best_metric == 0.8
    assert stop.lr_before == stop.lr_after == state.lr
    assert state.stopped and state.decisions == stop.index + 1


def test_an_improvement_resets_the_patience_count() -> None:
    rules = _rules(patience=2)
    state, _ = judge(_good(metric=0.8), rules, epoch=6, metric=0.7, diverged=False, epochs_run=2)
    state, _ = judge(state, rules, epoch=6, metric=0.85, diverged=False, epochs_run=2)
    assert state.rollbacks == 0
    state, decisions = judge(state, rules, epoch=8, metric=0.7, diverged=False, epochs_run=2)
    assert [d.action for d in decisions] == ["rollback"] and not state.stopped


def test_the_epoch_budget_counts_abandoned_epochs_and_stops() -> None:
    rules = _rules(period=3, epochs=7)
    state = SitterState(lr=0.1, epochs_trained=6, good_epoch=3, good_metric=0.5, decisions=2)
    assert period_length(state, rules) == 1  # what is left of the budget
    state, decisions = judge(state, rules, epoch=4, metric=0.6, diverged=False, epochs_run=1)
    assert [d.action for d in decisions] == ["raise", "stop"]
    assert decisions[1].reason == "epochs" and decisions[1].epochs_trained == 7
    assert state.stopped and period_length(state, rules) == 0


def test_the_state_after_any_decision_is_rebuilt_from_the_decision_alone() -> None:
    rules = _rules(patience=2, epochs=8)
    state = SitterState(lr=0.1)
    for metric in [0.5, 0.6, 0.4, 0.7, 0.1, 0.1]:
        if state.stopped:
            break
        state, decisions = judge(
            state, rules, epoch=state.good_epoch + 2, metric=metric, diverged=False, epochs_run=2
        )
        assert SitterState.after(decisions[-1]) == state


@settings(max_examples=200, deadline=None)
@given(
    metrics=st.lists(st.floats(0.0, 1.0) | st.just(float("nan")), min_size=1, max_size=60),
    period=st.integers(1, 5),
    epochs=st.integers(1, 40),
    patience=st.integers(1, 5),
)
def test_budget_and_patience_always_end_the_babysitting(
    metrics: list[float], period: int, epochs: int, patience: int
) -> None:
    """Whatever the metrics, the budget is never exceeded and decision indices are 0, 1, 2..."""
    rules = _rules(period=period, epochs=epochs, patience=patience)
    state = SitterState(lr=0.1)
    indices: list[int] = []
    for metric in metrics:
        if state.stopped:
            break
        run = period_length(state, rules)
        assert run >= 1
        state, decisions = judge(
            state,
            rules,
            epoch=state.good_epoch + run,
            metric=metric,
            diverged=math.isnan(metric),
            epochs_run=run,
        )
        indices += [d.index for d in decisions]
        assert rules.lr_low <= state.lr <= rules.lr_high
    assert state.epochs_trained <= epochs
    assert indices == list(range(len(indices)))
    if len(metrics) * period >= epochs:
        assert state.stopped
