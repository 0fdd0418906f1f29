"""The bounds each coarse-to-fine round searched: the zoom, as a long table.

Coarse-to-fine records them in the ``rounds`` table. Its exact columns belong to the sweep that
writes it, so two shapes are read: long (``round``, ``parameter`` or ``name``, ``low``, ``high``)
and wide (``round`` plus ``<name>_low`` / ``<name>_high``). Without a ``rounds`` table the
bounds are approximated by the range each round actually sampled, marked ``observed``.
"""

from __future__ import annotations

import pandas as pd

from analysis._scales import SpaceLike, resolve_scales

__all__ = ["round_bounds"]

_COLUMNS = ["run_id", "round", "parameter", "low", "high", "source"]


def round_bounds(
    trials: pd.DataFrame, rounds: pd.DataFrame | None = None, space: SpaceLike | None = None
) -> pd.DataFrame:
    """One row per (run_id, round, parameter) with the round's ``low``/``high`` (float64).

    ``source`` (str) is ``rounds`` when read from the rounds table, ``observed`` when derived
    from the sampled trials. Choice parameters have no bounds and are left out. Empty (with
    these columns) when the trials have a single round and no rounds table exists.
    """
    if rounds is not None and len(rounds):
        table = _from_rounds_table(rounds)
        if table is not None:
            return table
    if "round" not in trials.columns or trials["round"].nunique() < 2:
        return _empty()
    scales = {n: s for n, s in resolve_scales(trials, space).items() if s != "choice"}
    keys = [c for c in ("run_id", "round") if c in trials.columns]
    frames = []
    for name in scales:
        grouped = trials.groupby(keys, sort=True)[name].agg(["min", "max"]).reset_index()
        grouped = grouped.rename(columns={"min": "low", "max": "high"})
        grouped["parameter"] = name
        frames.append(grouped)
    if not frames:
        return _empty()
    return _typed(pd.concat(frames, ignore_index=True), "observed")


def _from_rounds_table(rounds: pd.DataFrame) -> pd.DataFrame | None:
    name_column = next((c for c in ("parameter", "name") if c in rounds.columns), None)
    if name_column and {"round", "low", "high"} <= set(rounds.columns):
        long = rounds.rename(columns={name_column: "parameter"})
        long = long[long["low"].notna() & long["high"].notna()]  # choices have values, no bounds
        if "asked_at" in long.columns:  # a round re-asked under an edited spec: the latest counts
            keys = [c for c in ("run_id", "round", "parameter") if c in long.columns]
            long = long.sort_values("asked_at", kind="stable").drop_duplicates(keys, keep="last")
        return _typed(long, "rounds")
    wide = sorted(c[: -len("_low")] for c in rounds.columns if c.endswith("_low"))
    wide = [n for n in wide if f"{n}_high" in rounds.columns]
    if "round" not in rounds.columns or not wide:
        return None
    keys = [c for c in ("run_id", "round") if c in rounds.columns]
    frames = [
        rounds[keys]
        .assign(parameter=n, low=rounds[f"{n}_low"], high=rounds[f"{n}_high"])
        .reset_index(drop=True)
        for n in wide
    ]
    return _typed(pd.concat(frames, ignore_index=True), "rounds")


def _typed(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    out = frame.copy()
    if "run_id" not in out.columns:
        out["run_id"] = ""
    out["source"] = source
    out = out[_COLUMNS].astype(
        {
            "run_id": "str",
            "round": "int64",
            "parameter": "str",
            "low": "float64",
            "high": "float64",
            "source": "str",
        }
    )
    return out.sort_values(["run_id", "parameter", "round"], kind="stable").reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return _typed(pd.DataFrame(columns=_COLUMNS), "observed")
