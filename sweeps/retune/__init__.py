"""Periodic re-tuning: the plan (incumbent, good region, exploration) and the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from sweeps.retune._retune import check_retune_results, run_retune

__all__ = [
    "check_retune_results",
    "run_retune",
]

# Loaded on first use: the run imports torch (through the Tuner's trials).
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "_retune": ["check_retune_results", "run_retune"],
    },
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
