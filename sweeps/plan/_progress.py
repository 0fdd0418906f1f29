"""What the terminal shows during a sweep: counts and the best configuration so far."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Progress"]


@dataclass
class Progress:
    total: int
    metric: str
    mode: str
    done: int = 0
    running: int = 0
    errors: int = 0
    diverged: int = 0
    best_value: float | None = None
    best_trial: str | None = None
    best_config: dict[str, object] = field(default_factory=dict)
    label: str = ""  # where an adaptive search is, e.g. "round 2/4"

    def consider(self, trial_id: str, value: object, config: Mapping[str, object]) -> None:
        if not isinstance(value, int | float) or value != value:  # None or NaN
            return
        better = self.best_value is None or (
            value > self.best_value if self.mode == "max" else value < self.best_value
        )
        if better:
            self.best_value, self.best_trial = float(value), trial_id
            self.best_config = dict(config)
