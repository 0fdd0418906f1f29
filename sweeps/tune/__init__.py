"""Trials on Ray Tune: the Tuner, the trial configs and packs (how a trial ended is
`sweeps.plan`'s)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
_LAZY = {
    **dict.fromkeys(("settle_auto_packing",), "sweeps.tune._auto_pack"),
    **dict.fromkeys(("DRIVERS",), "sweeps.tune._drivers"),
    **dict.fromkeys(("group_key",), "sweeps.tune._packing"),
    **dict.fromkeys(("build_tuner", "run_trials"), "sweeps.tune._trials"),
    **dict.fromkeys(("PointsSearcher", "trial_error_message"), "sweeps.tune._tune_adapter"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
