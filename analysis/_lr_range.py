"""The BatchNorm study's measure: how many decades of learning rate give a near-best model.

The lecture's claim is that BatchNorm makes the search easier because good learning rates span
a wider range. "Good" is "reaches at least ``threshold`` of the best accuracy"; the width is
measured in decades (log10 units), the coordinates a log-uniform learning-rate search samples in.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from analysis._errors import ResultsError
from analysis._summary import Mode, objective_values

__all__ = ["lr_range_width"]


def lr_range_width(
    df: pd.DataFrame,
    objective: str = "val_accuracy",
    by: str | None = "batchnorm",
    threshold: float = 0.95,
    *,
    param: str = "lr",
    mode: Mode = "max",
    reference: Literal["group", "overall"] = "group",
) -> pd.DataFrame:
    """Per value of ``by``: the learning-rate range whose trials reach ``threshold`` x the best.

    With ``mode="max"`` a trial is good when its objective >= threshold x best; with ``"min"``
    (a loss) when it is <= best / threshold. ``reference="group"`` compares each group with its
    own best, ``"overall"`` with the best of all groups. Diverged and failed trials are never
    good. ``by=None`` measures the whole frame as one group.

    Columns: ``by``'s value (as stored; "all" for ``by=None``), ``trials`` (int64), ``best``,
    ``cutoff`` (float64), ``good`` (int64, trials at or past the cutoff), ``lr_low``,
    ``lr_high`` (float64, smallest and largest good learning rate), ``width_decades``
    (float64, log10(lr_high / lr_low)), ``contiguous_decades`` (float64, the widest span of
    good learning rates with no bad trial between them) and ``holes`` (int64, bad trials
    inside [lr_low, lr_high]).
    """
    if not 0 < threshold <= 1:
        raise ResultsError("threshold", threshold, "must be in (0, 1]")
    values = objective_values(df, objective, mode)
    for column in (param, by):
        if column is not None and column not in df.columns:
            raise ResultsError(column, column, "no such column in the trials")
    lr = pd.to_numeric(df[param], errors="coerce").astype("float64")
    ok = np.isfinite(values) & (lr > 0)
    if "status" in df.columns:
        ok &= df["status"] == "ok"
    frame = pd.DataFrame({"lr": lr, "value": values.where(ok)})
    frame["group"] = df[by] if by is not None else "all"
    frame = frame.loc[lr > 0]
    overall = frame["value"].max() if mode == "max" else frame["value"].min()
    rows = []
    for key, group in frame.groupby("group", sort=True):
        group_best = group["value"].max() if mode == "max" else group["value"].min()
        target = group_best if reference == "group" else overall
        cutoff = target * threshold if mode == "max" else target / threshold
        rows.append({by or "group": key, **_widths(group, cutoff, mode), "best": group_best})
    columns = [
        by or "group",
        "trials",
        "best",
        "cutoff",
        "good",
        "lr_low",
        "lr_high",
        "width_decades",
        "contiguous_decades",
        "holes",
    ]
    out = pd.DataFrame(rows, columns=columns)
    return out.astype(
        {
            "trials": "int64",
            "best": "float64",
            "cutoff": "float64",
            "good": "int64",
            "lr_low": "float64",
            "lr_high": "float64",
            "width_decades": "float64",
            "contiguous_decades": "float64",
            "holes": "int64",
        }
    )


def _widths(group: pd.DataFrame, cutoff: float, mode: Mode) -> dict[str, float | int]:
    ordered = group.sort_values("lr", kind="stable")
    values = ordered["value"].to_numpy()
    with np.errstate(invalid="ignore"):
        good = values >= cutoff if mode == "max" else values <= cutoff
    good &= np.isfinite(values)
    decades = np.log10(ordered["lr"].to_numpy())
    result: dict[str, float | int] = {
        "trials": len(ordered),
        "cutoff": cutoff,
        "good": int(good.sum()),
    }
    if not good.any():
        nan = float("nan")
        return {
            **result,
            "lr_low": nan,
            "lr_high": nan,
            "width_decades": 0.0,
            "contiguous_decades": 0.0,
            "holes": 0,
        }
    first, last = np.flatnonzero(good)[[0, -1]]
    widest, start = 0.0, None
    for i, is_good in enumerate(good):
        if is_good and start is None:
            start = i
        if start is not None and (not is_good or i == len(good) - 1):
            end = i if is_good else i - 1
            widest = max(widest, float(decades[end] - decades[start]))
            start = None
    return {
        **result,
        "lr_low": float(10 ** decades[first]),
        "lr_high": float(10 ** decades[last]),
        "width_decades": float(decades[last] - decades[first]),
        "contiguous_decades": widest,
        "holes": int((~good[first : last + 1]).sum()),
    }
