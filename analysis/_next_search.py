"""Where the next search should look: the region the best configurations occupy.

Read in sampling coordinates: if the top trials crowd against an edge of the searched range, the
optimum may lie outside it, and the next sweep should widen that side rather than zoom in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis._scales import SpaceLike, resolve_scales, space_bounds, warp
from analysis._summary import Mode, best, objective_values

__all__ = ["next_bounds"]

_EDGE = 0.05  # within 5 % of the searched range (in sampling coordinates) counts as "at the edge"


def next_bounds(
    df: pd.DataFrame,
    objective: str = "val_accuracy",
    space: SpaceLike | None = None,
    *,
    mode: Mode = "max",
    top: float = 0.1,
    min_top: int = 3,
) -> pd.DataFrame:
    """Per searched parameter, the range spanned by the best ``top`` fraction of ok trials.

    Columns: ``parameter``, ``scale`` (str), ``low``, ``high`` (float64, the top trials' range;
    NaN for choices), ``values`` (str, the choices the top trials used; empty otherwise),
    ``searched_low``, ``searched_high`` (float64, the space's bounds, else the data's range),
    ``at_edge`` (str: ``low``, ``high``, ``both`` or empty, where the top trials touch the
    searched range; in sampling coordinates, so a reverse-log beta near 0.999 is "high").
    """
    scales = resolve_scales(df, space, exclude=(objective,))
    values = objective_values(df, objective, mode)
    finished = int(np.isfinite(values).sum())
    winners = best(df, max(min_top, int(np.ceil(top * finished))), objective, mode)
    spec = space if space is not None else df.attrs.get("space")
    rows: list[dict[str, object]] = []
    for name, scale in scales.items():
        if scale == "choice":
            used = sorted(map(str, pd.unique(winners[name].dropna())))
            rows.append({"parameter": name, "scale": scale, "values": ", ".join(used)})
            continue
        data = pd.to_numeric(df[name], errors="coerce").dropna().to_numpy(dtype=float)
        bounds = space_bounds((spec or {}).get(name, scale)) or (data.min(), data.max())
        chosen = winners[name].to_numpy(dtype=float)
        rows.append(
            {
                "parameter": name,
                "scale": scale,
                "low": chosen.min(),
                "high": chosen.max(),
                "values": "",
                "searched_low": bounds[0],
                "searched_high": bounds[1],
                "at_edge": _edge(chosen, bounds, scale),
            }
        )
    columns = [
        "parameter",
        "scale",
        "low",
        "high",
        "values",
        "searched_low",
        "searched_high",
        "at_edge",
    ]
    out = pd.DataFrame(rows, columns=columns)
    out[["values", "at_edge"]] = out[["values", "at_edge"]].fillna("")
    floats = ["low", "high", "searched_low", "searched_high"]
    return out.astype(
        {c: "float64" for c in floats} | {c: "str" for c in columns if c not in floats}
    )


def _edge(chosen: np.ndarray, bounds: tuple[float, float], scale: str) -> str:
    if scale not in ("log", "reverse_log", "linear"):
        return ""
    # Why the type ignores below: scale is one of warp's literals, checked above
    u = warp(chosen, scale)  # type: ignore[arg-type]
    ends = warp(np.asarray(bounds), scale)  # type: ignore[arg-type]
    low, high = ends.min(), ends.max()
    span = high - low
    if span <= 0:
        return ""
    near_low = bool(np.any(u <= low + _EDGE * span))
    near_high = bool(np.any(u >= high - _EDGE * span))
    if scale == "reverse_log":  # warp is decreasing: small log10(1 - x) is large x
        near_low, near_high = near_high, near_low
    return {(True, True): "both", (True, False): "low", (False, True): "high"}.get(
        (near_low, near_high), ""
    )
