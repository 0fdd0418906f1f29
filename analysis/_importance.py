"""Which hyperparameters matter: fANOVA in the coordinates that sampling was uniform in.

Importance on the raw scale would be dominated by the top decade of a log parameter (0.1-1 is
90 % of [1e-4, 1]), and by 0.9-0.99 of a momentum in [0.9, 0.999]. So every parameter is warped
first: log10 x for ``log``, log10(1 - x) for ``reverse_log``, the category's position for
``choice`` (each category one unit wide, so the marginal averages over categories uniformly).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from analysis._errors import ResultsError
from analysis._fanova import fanova
from analysis._scales import Scale, SpaceLike, resolve_scales, space_bounds, warp
from analysis._summary import Mode

__all__ = ["categories", "importance", "sampling_coordinates"]

_MIN_TRIALS = 4


def importance(
    df: pd.DataFrame,
    objective: str = "val_accuracy",
    space: SpaceLike | None = None,
    *,
    mode: Mode = "max",
    diverged: Literal["worst", "drop"] = "worst",
    n_trees: int = 64,
    seed: int = 0,
) -> pd.DataFrame:
    """fANOVA main-effect importance of each searched hyperparameter for ``objective``.

    ``space`` maps each searched name to its scale (``linear | log | reverse_log | choice``) or
    to its spec domain (``{"type": "float", "low": ..., "high": ..., "scale": "log"}``); by
    default the space stored with the sweep (``df.attrs["space"]``), else inferred from the data.
    Diverged trials are real outcomes of their hyperparameters (too large a learning rate), so
    by default they count with the worst objective observed (``diverged="drop"`` leaves them
    out); ``error`` and ``stopped`` trials are left out.

    Returns one row per parameter, most important first: ``parameter`` (str), ``scale`` (str),
    ``importance`` (float64, share of the summed main effects, sums to 1 like Optuna's),
    ``variance_fraction`` (float64, the main effect's fraction of the forest's variance; the rest
    is interactions) and ``std`` (float64, of that fraction over trees).
    """
    scales = resolve_scales(df, space, exclude=(objective,))
    if not scales:
        raise ResultsError("space", {}, "no searched hyperparameter (no column varies)")
    rows = _usable_rows(df, objective, mode, diverged, list(scales))
    if len(rows) < _MIN_TRIALS:
        raise ResultsError(
            objective, len(rows), f"importance needs at least {_MIN_TRIALS} finished trials"
        )
    spec = space if space is not None else df.attrs.get("space")
    x, domain = sampling_coordinates(rows, scales, spec)
    y = rows[objective].to_numpy(dtype=float)
    result = fanova(x, y, domain, n_trees=n_trees, seed=seed)
    total = result.fraction.sum()
    share = result.fraction / total if total > 0 else np.zeros_like(result.fraction)
    out = pd.DataFrame(
        {
            "parameter": pd.Series(list(scales), dtype="str"),
            "scale": pd.Series(list(scales.values()), dtype="str"),
            "importance": share.astype("float64"),
            "variance_fraction": result.fraction.astype("float64"),
            "std": result.std.astype("float64"),
        }
    )
    return out.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def _usable_rows(
    df: pd.DataFrame, objective: str, mode: str, diverged: str, names: list[str]
) -> pd.DataFrame:
    if objective not in df.columns:
        raise ResultsError(
            "objective", objective, f"no such column (columns: {', '.join(map(str, df.columns))})"
        )
    if mode not in ("max", "min"):
        raise ResultsError("mode", mode, "must be 'max' or 'min'")
    rows = df.copy()
    rows[objective] = pd.to_numeric(rows[objective], errors="coerce").astype("float64")
    finite = np.isfinite(rows[objective].to_numpy())
    if "status" in rows.columns:
        is_diverged = (rows["status"] == "diverged").to_numpy()
        keep = (rows["status"] == "ok").to_numpy() & finite
        if diverged == "worst" and finite.any():
            values = rows.loc[finite, objective]
            worst = values.min() if mode == "max" else values.max()
            rows.loc[is_diverged, objective] = worst
            keep |= is_diverged
    else:
        keep = finite
    rows = rows.loc[keep]
    return rows.dropna(subset=names)


def sampling_coordinates(
    rows: pd.DataFrame, scales: Mapping[str, Scale], space: SpaceLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The (n, d) matrix of warped values and its (d, 2) domain, one column per parameter.

    A float/int domain is its spec bounds warped (widened to the data if a value lies outside),
    else the data's range; a choice's categories sit at 0, 1, ... with unit-wide cells.
    """
    columns, domain = [], []
    for name, scale in scales.items():
        values = rows[name]
        if scale == "choice":
            known = categories(values, (space or {}).get(name))
            codes = values.map({c: i for i, c in enumerate(known)})
            columns.append(codes.to_numpy(dtype=float))
            domain.append((-0.5, len(known) - 0.5))
            continue
        u = warp(values, scale)
        low, high = u.min(), u.max()
        bounds = space_bounds((space or {}).get(name, scale))
        if bounds is not None:
            ends = warp(np.asarray(bounds), scale)
            low, high = min(low, ends.min()), max(high, ends.max())
        if high <= low:
            high = low + 1.0
        columns.append(u)
        domain.append((low, high))
    return np.column_stack(columns), np.asarray(domain, dtype=float)


def categories(values: pd.Series, entry: object) -> list[object]:
    """The spec's order when known (so codes are stable), else sorted observed values."""
    if isinstance(entry, Mapping) and isinstance(entry.get("values"), list):
        known = list(entry["values"])
        extra = [v for v in pd.unique(values) if v not in known]
        return known + sorted(extra, key=str)
    return sorted(pd.unique(values.dropna()), key=lambda v: (str(type(v)), v))
