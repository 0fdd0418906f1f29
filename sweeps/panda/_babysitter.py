"""Panda mode's judgement, as plain values: no Ray, no torch, no files.

A practitioner with little compute babysits one model: every `period` epochs they look at it,
keep it (nudging the learning rate up) when it improved, and go back to the last good
checkpoint with a lower learning rate when it did not. `judge` is that look. Everything it
needs to go on is in `SitterState`, and every decision carries the state it leaves behind, so
the last recorded decision is enough to continue after a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from analysis import Mode

__all__ = [
    "ACTIONS",
    "Decision",
    "PandaRules",
    "SitterState",
    "checkpoint_name",
    "judge",
    "period_length",
]

Action = Literal["keep", "raise", "rollback", "stop"]
ACTIONS: tuple[Action, ...] = ("keep", "raise", "rollback", "stop")


@dataclass(frozen=True)
class PandaRules:
    """How the babysitter judges; built once from the spec.

    `epochs` budgets epochs *trained*, abandoned branches included: the babysitter costs what
    one ordinary trial of the sweep costs, however many rollbacks it makes.
    """

    period: int
    raise_factor: float
    lower_factor: float
    patience: int
    epochs: int
    mode: Mode
    lr_low: float
    lr_high: float

    def improves(self, metric: float | None, best: float | None) -> bool:
        """Strictly better than the last good checkpoint; a tie is not progress."""
        if metric is None or not math.isfinite(metric):
            return False
        if best is None:
            return True
        return metric > best if self.mode == "max" else metric < best

    def clamp_lr(self, lr: float) -> float:
        return min(max(lr, self.lr_low), self.lr_high)


@dataclass(frozen=True)
class SitterState:
    """Where one babysat model stands between periods.

    The next period always starts from `good_checkpoint` (None: the freshly initialised model,
    epoch 0), because after a keep the current model *is* the good one and after a rollback it
    is restored to it.
    """

    lr: float
    good_epoch: int = 0
    good_metric: float | None = None
    good_checkpoint: str | None = None
    rollbacks: int = 0  # consecutive, since the last improvement
    epochs_trained: int = 0  # abandoned branches included
    decisions: int = 0  # decisions made so far: the index of the next one
    stopped: bool = False

    @classmethod
    def after(cls, decision: Decision) -> SitterState:
        """The state a recorded decision left behind: how a resumed run picks up."""
        return cls(
            lr=decision.lr_after,
            good_epoch=decision.restored_epoch,
            good_metric=decision.best_metric,
            good_checkpoint=decision.checkpoint,
            rollbacks=decision.rollbacks,
            epochs_trained=decision.epochs_trained,
            decisions=decision.index + 1,
            stopped=decision.action == "stop",
        )


@dataclass(frozen=True)
class Decision:
    """One event row: what was judged, what was done, and the state that follows.

    `epoch` is the model's epoch that was judged (for `stop`: the final model's epoch);
    `restored_epoch` is the epoch the model goes on from (for a rollback, the good checkpoint).
    """

    index: int
    epoch: int
    epochs_trained: int
    action: Action
    reason: str  # improved | worse | diverged | patience | lr_floor | epochs
    metric: float | None
    lr_before: float
    lr_after: float
    restored_epoch: int
    best_metric: float | None
    rollbacks: int
    checkpoint: str | None

    def describe(self, metric_name: str) -> str:
        """The line the CLI prints for this decision."""
        lr = f"lr {self.lr_before:.4g} -> {self.lr_after:.4g}"
        if self.action == "stop":
            best = "-" if self.best_metric is None else f"{self.best_metric:.4f}"
            return (
                f"stop ({self.reason}) after {self.epochs_trained} epochs trained: "
                f"model of epoch {self.restored_epoch}, {metric_name} {best}"
            )
        value = "nan" if self.metric is None else f"{self.metric:.4f}"
        if self.action == "rollback":
            best = "-" if self.best_metric is None else f"{self.best_metric:.4f}"
            why = "diverged" if self.reason == "diverged" else f"{metric_name} {value} vs {best}"
            return f"epoch {self.epoch}: rollback to epoch {self.restored_epoch}, {lr} ({why})"
        return f"epoch {self.epoch}: {self.action}, {lr} ({metric_name} {value})"


def checkpoint_name(decision_index: int) -> str:
    """The file a period's model is saved to when decision `decision_index` keeps it."""
    return f"d{decision_index:05d}.pt"


def period_length(state: SitterState, rules: PandaRules) -> int:
    """Epochs the next period trains: a whole period, or what is left of the budget."""
    return max(0, min(rules.period, rules.epochs - state.epochs_trained))


def judge(
    state: SitterState,
    rules: PandaRules,
    *,
    epoch: int,
    metric: float | None,
    diverged: bool,
    epochs_run: int,
) -> tuple[SitterState, list[Decision]]:
    """Judge the period that just ended at model epoch `epoch` after `epochs_run` epochs.

    Returns the new state and the decisions made: one judgement (keep, raise or rollback), then
    a `stop` when patience or the epoch budget ran out.
    """
    trained = state.epochs_trained + epochs_run
    index = state.decisions
    if not diverged and rules.improves(metric, state.good_metric):
        lr_after = rules.clamp_lr(state.lr * rules.raise_factor)
        action: Action = "raise" if lr_after > state.lr else "keep"
        reason = "improved"
        new = replace(
            state,
            lr=lr_after,
            good_epoch=epoch,
            good_metric=metric,
            good_checkpoint=checkpoint_name(index),
            rollbacks=0,
        )
    else:
        action, reason = "rollback", ("diverged" if diverged else "worse")
        lr_after = rules.clamp_lr(state.lr * rules.lower_factor)
        new = replace(state, lr=lr_after, rollbacks=state.rollbacks + 1)
    new = replace(new, epochs_trained=trained, decisions=index + 1)
    decisions = [_decision(new, index, epoch, action, reason, metric, state.lr)]
    stop_reason = _stop_reason(new, rules, lowered=action != "rollback" or lr_after < state.lr)
    if stop_reason is not None:
        new = replace(new, decisions=index + 2, stopped=True)
        decisions.append(
            _decision(new, index + 1, new.good_epoch, "stop", stop_reason, new.good_metric, new.lr)
        )
    return new, decisions


def _stop_reason(state: SitterState, rules: PandaRules, *, lowered: bool) -> str | None:
    if state.rollbacks >= rules.patience:
        return "patience"
    if not lowered:
        # Same checkpoint, same RNG, same lr: the next period would repeat this one bit for bit.
        return "lr_floor"
    if state.epochs_trained >= rules.epochs:
        return "epochs"
    return None


def _decision(
    state: SitterState,
    index: int,
    epoch: int,
    action: Action,
    reason: str,
    metric: float | None,
    lr_before: float,
) -> Decision:
    finite = metric if metric is not None and math.isfinite(metric) else None
    return Decision(
        index=index,
        epoch=epoch,
        epochs_trained=state.epochs_trained,
        action=action,
        reason=reason,
        metric=finite,
        lr_before=lr_before,
        lr_after=state.lr,
        restored_epoch=state.good_epoch,
        best_metric=state.good_metric,
        rollbacks=state.rollbacks,
        checkpoint=state.good_checkpoint,
    )
