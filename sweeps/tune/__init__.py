"""Trials on Ray Tune: the Tuner, the trial configs and packs (how a trial ended is
`sweeps.plan`'s)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from sweeps.tune._auto_pack import settle_auto_packing
    from sweeps.tune._drivers import DRIVERS
    from sweeps.tune._packing import group_key
    from sweeps.tune._trials import build_tuner, run_trials
    from sweeps.tune._tune_adapter import PointsSearcher, trial_error_message

__all__ = [
    "DRIVERS",
    "PointsSearcher",
    "build_tuner",
    "group_key",
    "run_trials",
    "settle_auto_packing",
    "trial_error_message",
]

# Loaded on first use: the Tuner's modules import torch and Ray, which a command that trains
# nothing never imports (tests/sweeps/test_cli_imports.py).
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "_auto_pack": ["settle_auto_packing"],
        "_drivers": ["DRIVERS"],
        "_packing": ["group_key"],
        "_trials": ["build_tuner", "run_trials"],
        "_tune_adapter": ["PointsSearcher", "trial_error_message"],
    },
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
