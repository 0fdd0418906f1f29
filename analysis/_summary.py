"""Tables that answer "what was best" and "did the search converge", from the `trials` frame."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from analysis._errors import ResultsError

__all__ = ["best", "best_so_far", "objective_values", "round_summary"]

Mode = Literal["max", "min"]


def objective_values(df: pd.DataFrame, objective: str, mode: Mode) -> pd.Series:
    """The objective as float64, checked: a user error names the missing column or bad mode."""
    if mode not in ("max", "min"):
        raise ResultsError("mode", mode, "must be 'max' or 'min'")
    if objective not in df.columns:
        columns = ", ".join(map(str, df.columns)) or "none: no trials"
        raise ResultsError("objective", objective, f"no such column (columns: {columns})")
    return pd.to_numeric(df[objective], errors="coerce").astype("float64")


def _ok(df: pd.DataFrame, values: pd.Series) -> pd.Series:
    """Finished trials with a finite objective; diverged/error/stopped ones never rank."""
    finite = pd.Series(np.isfinite(values.to_numpy()), index=df.index)
    if "status" in df.columns:
        return finite & (df["status"] == "ok")
    return finite


def best(
    df: pd.DataFrame, k: int = 5, objective: str = "val_accuracy", mode: Mode = "max"
) -> pd.DataFrame:
    """The ``k`` best finished trials, best first (ties keep trial order); same columns as ``df``.

    Only ``status == "ok"`` rows with a finite objective rank: a diverged trial's last accuracy
    is not a result anyone would deploy.
    """
    if k < 1:
        raise ResultsError("k", k, "must be >= 1")
    values = objective_values(df, objective, mode)
    ranked = df.loc[_ok(df, values)]
    order = values.loc[ranked.index].sort_values(ascending=mode == "min", kind="stable").index
    return ranked.loc[order[:k]].reset_index(drop=True)


def best_so_far(
    df: pd.DataFrame, objective: str = "val_accuracy", mode: Mode = "max"
) -> pd.DataFrame:
    """The running best in the order trials finished: did the search converge?

    Columns: ``n`` (int64, trials finished so far), ``trial_id`` (str), ``value`` (float64, that
    trial's objective; NaN unless ok) and ``best`` (float64, best so far).
    """
    values = objective_values(df, objective, mode).where(lambda v: _ok(df, v))
    order = ["ended_at"] if "ended_at" in df.columns else []
    order += [c for c in ("run_id", "round", "config_index", "trial_id") if c in df.columns]
    frame = pd.DataFrame({"value": values})
    frame["trial_id"] = df["trial_id"].astype("str") if "trial_id" in df.columns else ""
    if order:
        frame = frame.loc[df.sort_values(order, kind="stable").index]
    running = frame["value"].cummax() if mode == "max" else frame["value"].cummin()
    running = running.ffill()  # a diverged trial does not erase the best so far
    return pd.DataFrame(
        {
            "n": np.arange(1, len(frame) + 1, dtype="int64"),
            "trial_id": frame["trial_id"].to_numpy(),
            "value": frame["value"].to_numpy(dtype="float64"),
            "best": running.to_numpy(dtype="float64"),
        }
    )


def round_summary(
    df: pd.DataFrame, objective: str = "val_accuracy", mode: Mode = "max"
) -> pd.DataFrame:
    """One row per (run_id, round): how many trials, how they ended, the best and the median.

    Columns: ``run_id`` (str), ``round`` (int64), ``trials``, ``ok``, ``diverged``, ``failed``
    (int64; failed = error or stopped), ``best``, ``median`` (float64, over ok trials),
    ``best_trial_id`` (str) and ``best_so_far`` (float64, over this and earlier rounds of the run).
    A sweep that is not coarse-to-fine has one round, 0.
    """
    values = objective_values(df, objective, mode)
    frame = pd.DataFrame(
        {
            "run_id": df["run_id"].astype("str") if "run_id" in df.columns else "",
            "round": df["round"].astype("int64") if "round" in df.columns else 0,
            "trial_id": df["trial_id"].astype("str") if "trial_id" in df.columns else "",
            "status": df["status"].astype("str") if "status" in df.columns else "ok",
            "value": values.where(_ok(df, values)),
        }
    )
    rows = []
    for (run_id, rnd), group in frame.groupby(["run_id", "round"], sort=True):
        ok = group["value"].dropna()
        best_index = (ok.idxmax() if mode == "max" else ok.idxmin()) if len(ok) else None
        rows.append(
            {
                "run_id": run_id,
                "round": rnd,
                "trials": len(group),
                "ok": int((group["status"] == "ok").sum()),
                "diverged": int((group["status"] == "diverged").sum()),
                "failed": int(group["status"].isin(["error", "stopped"]).sum()),
                "best": ok.max() if mode == "max" else ok.min(),
                "median": ok.median(),
                "best_trial_id": group.loc[best_index, "trial_id"]
                if best_index is not None
                else None,
            }
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "round",
            "trials",
            "ok",
            "diverged",
            "failed",
            "best",
            "median",
            "best_trial_id",
        ],
    )
    out = out.astype(
        {
            "run_id": "str",
            "round": "int64",
            "trials": "int64",
            "ok": "int64",
            "diverged": "int64",
            "failed": "int64",
            "best": "float64",
            "median": "float64",
        }
    )
    out["best_trial_id"] = out["best_trial_id"].astype("str")
    grouped = out.groupby("run_id")["best"]
    out["best_so_far"] = grouped.cummax() if mode == "max" else grouped.cummin()
    return out
