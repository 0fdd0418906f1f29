"""The settings of the built-in strategies, as typed, validated models: `strategy: {kind: ...}`.

A model says what its strategy's settings are; which `kind` names it is the strategy table's
to say (`_strategy_table.STRATEGIES`), which picks the model when a spec is read. Kept apart
from the rest of the spec so that the table, which the spec's checks consult, can depend on
them without depending on the spec.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from search_spaces import SamplerName

__all__ = [
    "MAX_TRIALS",
    "STRICT",
    "AutoStrategy",
    "CoarseToFineStrategy",
    "GridStrategy",
    "PandaStrategy",
    "RandomStrategy",
    "SobolStrategy",
    "StrategyModel",
    "TpeStrategy",
    "parse_time_budget",
]

MAX_TRIALS = 100_000  # configurations one sweep may plan
# Every spec model: unknown keys, coerced types and mutation are errors.
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class StrategyModel(BaseModel):
    """Every strategy's settings: its `kind` (a key of the strategy table, which chose this
    model for it) and the keys its subclass declares."""

    model_config = STRICT
    kind: str


class RandomStrategy(StrategyModel):
    samples: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 64


class SobolStrategy(StrategyModel):
    samples: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 64


class GridStrategy(StrategyModel):
    points: Annotated[int, Field(ge=2, le=1_000)] = 5


class CoarseToFineStrategy(StrategyModel):
    """Rounds of `per_round` configurations, each round's bounds narrowed around the best so far.

    `start_next_at` is the share of a round that must be recorded before the next round is
    asked: below 1 the cluster never idles waiting for one straggler (late results still inform
    the rounds after); 1 makes rounds strict barriers.
    """

    rounds: Annotated[int, Field(ge=1, le=1_000)] = 4
    per_round: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 64
    sampler: SamplerName = "model"
    start_next_at: Annotated[float, Field(gt=0.0, le=1.0)] = 0.75


class TpeStrategy(StrategyModel):
    """Optuna's TPE through Ray Tune, for comparing against coarse-to-fine on one's own problem."""

    samples: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 64
    startup: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 10


class PandaStrategy(StrategyModel):
    """Babysit a few models: judge every `period` epochs, raise the lr or roll back and lower it."""

    period: Annotated[int, Field(ge=1, le=10_000)] = 2
    start: dict[str, Any] = Field(default_factory=dict)
    models: Annotated[int, Field(ge=1, le=64)] = 1
    raise_factor: Annotated[float, Field(ge=1.0, le=100.0)] = 1.0
    lower_factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    patience: Annotated[int, Field(ge=1, le=1_000)] = 3


_TIME_BUDGET = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_budget(value: str | int | float) -> float:
    """Seconds in a budget written `90`, `90s`, `30m`, `2h` or `1.5d`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _TIME_BUDGET.fullmatch(str(value).strip())
        if match is None:
            raise ValueError("must be seconds or a number with s, m, h or d, e.g. 30m or 2h")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 1 <= seconds <= 365 * 86400:
        raise ValueError("must be between 1 second and 365 days")
    return seconds


class AutoStrategy(StrategyModel):
    """Panda or caviar, decided from the cluster, a cost probe and `time_budget` (docs/auto.md).

    `sampler` is coarse-to-fine's if caviar is chosen; `start` and `max_models` panda's.
    """

    time_budget: str | int | float
    sampler: SamplerName = "model"
    start: dict[str, Any] = Field(default_factory=dict)
    max_models: Annotated[int, Field(ge=1, le=64)] = 4

    @field_validator("time_budget", mode="before")
    @classmethod
    def _budget(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("must be seconds or a number with s, m, h or d, e.g. 30m or 2h")
        parse_time_budget(value)
        return value
