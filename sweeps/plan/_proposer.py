"""The interface between an adaptive strategy and the Ray Tune searcher that runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sweeps.plan._points import PlannedPoint

__all__ = ["Proposer"]


class Proposer(Protocol):
    """Decides the next configuration from the results so far; knows nothing of Ray.

    `propose` returns None when the next point must wait for more results (a round not yet
    complete); `finished` is true once nothing more will ever be proposed. `record` receives
    every proposed point's score, None for a failed or diverged trial.
    """

    @property
    def total(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    @property
    def label(self) -> str: ...

    @property
    def batch(self) -> int:
        """How many points it decides together (coarse-to-fine: a round): what `pack: auto`
        sizes packs from."""
        ...

    def propose(self) -> PlannedPoint | None: ...

    def record(self, point: PlannedPoint, score: float | None) -> None: ...

    def take_queued(self, match: Callable[[PlannedPoint], bool]) -> PlannedPoint | None:
        """A point already decided that `match` accepts (to fill a pack); never asks for more."""
        ...
