"""The sampling scale of each searched hyperparameter, and the warp into its sampling coordinates.

Analysis cannot import `search_spaces`, so a space reaches it as plain data: the spec's
``search_space`` mapping (stored by the sweep as ``<sweep>/_space.json``; `load_trials` attaches
it as ``df.attrs["space"]``), or a mapping name -> scale given by the caller. Without either, the
searched columns and their scales are inferred from the data: the scale in which the sampled
values look most uniform is the one sampling used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from analysis._errors import ResultsError

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "Scale",
    "SpaceLike",
    "infer_scale",
    "resolve_scales",
    "space_bounds",
    "warp",
]

Scale = Literal["linear", "log", "reverse_log", "choice"]
SCALES: tuple[Scale, ...] = ("linear", "log", "reverse_log", "choice")
# A scale per name, or the spec's domain mapping per name ({"type": "float", "scale": "log", ...}).
SpaceLike = Mapping[str, "Scale | str | Mapping[str, Any]"]

# Columns of `trials` that are not hyperparameters (docs/results.md).
_IDS = ("sweep", "run_id", "run", "round", "trial_id", "config_index", "origin", "status", "seed")
_METRICS = ("train_loss", "val_loss", "val_accuracy", "best_val_accuracy", "best_val_loss")
_RECORD = ("dataset", "epochs", "epochs_done", "started_at", "ended_at", "duration_s", "node",
           "node_id", "error")  # fmt: skip
BOOKKEEPING_COLUMNS = frozenset(_IDS + _METRICS + _RECORD)
_MAX_CHOICES = 8  # a numeric column with at most this many distinct values is read as a choice


def resolve_scales(
    df: pd.DataFrame, space: SpaceLike | None = None, exclude: tuple[str, ...] = ()
) -> dict[str, Scale]:
    """Name -> scale of every searched hyperparameter, in the space's (or the frame's) order.

    ``space`` wins; then ``df.attrs["space"]``; then inference over the columns that vary.
    """
    if space is None:
        space = df.attrs.get("space")
    if space is not None:
        scales = {name: _scale_of(name, entry) for name, entry in space.items()}
        missing = [name for name in scales if name not in df.columns]
        if missing:
            raise ResultsError(
                "space", missing, f"not columns of the trials (columns: {', '.join(df.columns)})"
            )
        return scales
    candidates = [
        c
        for c in df.columns
        if c not in BOOKKEEPING_COLUMNS
        and c not in exclude
        and not pd.api.types.is_datetime64_any_dtype(df[c])
        and df[c].nunique(dropna=True) > 1
    ]
    return {name: infer_scale(df[name]) for name in candidates}


def _scale_of(name: str, entry: Scale | str | Mapping[str, Any]) -> Scale:
    if isinstance(entry, Mapping):
        scale = "choice" if entry.get("type") == "choice" else entry.get("scale", "linear")
    else:
        scale = entry
    if scale not in SCALES:
        raise ResultsError(f"space.{name}", scale, f"unknown scale; valid: {', '.join(SCALES)}")
    return cast(Scale, scale)


def infer_scale(values: pd.Series) -> Scale:
    """The warp under which the values are closest to uniform (Kolmogorov-Smirnov distance)."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "choice"
    x = values.dropna().to_numpy(dtype=float)
    if len(np.unique(x)) <= _MAX_CHOICES:
        return "choice"
    options: list[Scale] = ["linear"]
    if x.min() > 0:
        options.append("log")
    if x.min() >= 0 and x.max() < 1:
        options.append("reverse_log")
    return min(options, key=lambda s: _ks_to_uniform(warp(x, s)))


def _ks_to_uniform(u: np.ndarray) -> float:
    low, high = u.min(), u.max()
    if high <= low:
        return 1.0
    z = np.sort((u - low) / (high - low))
    grid = np.arange(1, len(z) + 1) / len(z)
    return float(np.max(np.abs(z - grid)))


def warp(values: np.ndarray | pd.Series, scale: Scale) -> np.ndarray:
    """Sampling coordinates: log10 x for log, log10(1 - x) for reverse-log, x otherwise.

    (Decreasing in x for reverse-log: larger beta is further left. Choices are not warped here;
    see `encode`.)
    """
    x = np.asarray(values, dtype=float)
    if scale == "log":
        return np.log10(x)
    if scale == "reverse_log":
        return np.log10(1.0 - x)
    return x


def space_bounds(entry: Scale | str | Mapping[str, Any]) -> tuple[float, float] | None:
    """A float/int domain's (low, high) from a spec mapping; None when not given."""
    if isinstance(entry, Mapping) and "low" in entry and "high" in entry:
        return float(entry["low"]), float(entry["high"])
    return None
