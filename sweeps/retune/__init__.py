"""Periodic re-tuning: the plan (incumbent, good region, exploration) and the run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeps.retune._retune import check_retune_results, run_retune

__all__ = [
    "check_retune_results",
    "run_retune",
]

# Loaded on first use: the run imports torch (through the Tuner's trials).
_LAZY = {
    **dict.fromkeys(("check_retune_results", "run_retune"), "sweeps.retune._retune"),
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
