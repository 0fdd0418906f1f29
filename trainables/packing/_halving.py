"""Successive halving inside a pack: stop the worse members at rung epochs.

The members of a pack advance in lockstep, so ASHA's rungs become synchronous: at each rung
epoch (grace_period · reduction_factor^i) only the best 1/reduction_factor of the members
still training go on. Stopped members leave their stack at once, so they cost nothing more.
Members compete only with the members of their own pack; the sweep layer decides how packs
are formed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from trainables._hparams import HyperParameterError
from trainables._train import EpochResult

METRICS: dict[str, str] = {"val_accuracy": "max", "val_loss": "min", "train_loss": "min"}


@dataclass(frozen=True)
class SuccessiveHalving:
    """Keep the best ceil(n / reduction_factor) of the n members alive at each rung.

    `mode` defaults by metric (max for val_accuracy, min for the losses). No member is
    stopped at the final epoch: nothing would be saved.
    """

    metric: str = "val_accuracy"
    mode: str | None = None
    grace_period: int = 1
    reduction_factor: float = 3.0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise HyperParameterError(
                "early_stopping.metric", self.metric, f"must be one of {sorted(METRICS)}"
            )
        if self.mode is None:
            object.__setattr__(self, "mode", METRICS[self.metric])
        if self.mode not in ("min", "max"):
            raise HyperParameterError("early_stopping.mode", self.mode, "must be 'min' or 'max'")
        if isinstance(self.grace_period, bool) or not isinstance(self.grace_period, int):
            raise HyperParameterError(
                "early_stopping.grace_period", self.grace_period, "must be an integer"
            )
        if self.grace_period < 1:
            raise HyperParameterError(
                "early_stopping.grace_period", self.grace_period, "must be >= 1"
            )
        factor = self.reduction_factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 1:
            raise HyperParameterError(
                "early_stopping.reduction_factor", factor, "must be a number > 1"
            )

    def is_rung(self, epoch: int) -> bool:
        """Whether `epoch` (1-based) is grace_period · reduction_factor^i for some i >= 0."""
        rung, i = self.grace_period, 0
        while rung < epoch:
            i += 1
            rung = round(self.grace_period * self.reduction_factor**i)
        return rung == epoch

    def stops(self, epoch: int, results: Mapping[int, EpochResult], epochs: int) -> set[int]:
        """The members (keys of `results`) to stop after `epoch` of `epochs`.

        Diverged members are already out and are neither ranked nor returned.
        """
        if epoch >= epochs or not self.is_rung(epoch):
            return set()
        alive = [member for member, result in results.items() if not result.diverged]
        keep = math.ceil(len(alive) / self.reduction_factor)
        sign = -1.0 if self.mode == "max" else 1.0
        ranked = sorted(alive, key=lambda m: (sign * getattr(results[m], self.metric), m))
        return set(ranked[keep:])
