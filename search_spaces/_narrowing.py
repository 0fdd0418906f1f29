"""How coarse-to-fine narrows: a trust region in unit coordinates, moved and resized by results.

The naive rule (bounding box of the top quarter, padded, every round) collapses onto whatever
basin the first round happened to favour and cannot recover from a box that missed the optimum.
This rule borrows from three known designs and guards against their failure modes:

- TuRBO (Eriksson et al., 2019): a box around the incumbent with success/failure counters; it
  halves after a round that did not improve, and *restarts* from the whole space once it has
  shrunk below a minimum window, instead of spending rounds in a tiny box. It grows (doubles)
  only after `success_rounds` improving rounds in a row whose new best lay on the box's edge:
  TuRBO grows on any run of successes, which with 16+ points per round is nearly every round.
- Sequential domain reduction (Stander & Craig; bayesian-optimization's `SequentialDomain
  ReductionTransformer`): the box is *panned* to follow the incumbent and shifted back inside the
  parent bounds rather than clipped, so an optimum on the edge of the space is still surrounded
  by a full-sized box; every side keeps a minimum width.
- mlr3 focus search: shrink only around the best point, and only when the round failed to
  improve on it; an improving round keeps the size and moves the box to the new best.

The box's aspect follows the spread of the good points (the elite) per axis, so an axis that
does not matter stays wide while one that does narrows fast. Everything happens in the warped
unit coordinates of the parent space: a log parameter narrows per decade and a reverse-log one
per decade of 1 - beta. Integers snap to whole cells (at least two values); a choice keeps the
values the elite uses plus the incumbent's, so it never runs out of options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ._domains import ChoiceDomain, FloatDomain, IntDomain
from ._errors import Problem, SearchSpaceError
from ._space import SearchSpace


@dataclass(frozen=True)
class NarrowingSettings:
    """The tuning knobs of the narrowing rule; the defaults were chosen on the BBOB benchmark.

    Windows are side lengths in unit coordinates (1.0 = the whole range of a parameter).
    """

    initial_window: float = 0.5
    min_window: float = 1.0 / 64
    shrink: float = 0.5
    expand: float = 2.0
    success_rounds: int = 3
    failure_rounds: int = 1
    elite_fraction: float = 0.25
    improvement: float = 1e-3

    def __post_init__(self) -> None:
        problems = []
        for name, low, high in (
            ("initial_window", 0.0, 1.0),
            ("min_window", 0.0, 1.0),
            ("shrink", 0.0, 1.0),
            ("elite_fraction", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not _is_number(value) or not low < value <= high:
                problems.append(Problem(name, value, f"must be a number in ({low}, {high}]"))
        if not _is_number(self.expand) or not self.expand >= 1.0:
            problems.append(Problem("expand", self.expand, "must be a number >= 1"))
        if not _is_number(self.improvement) or not self.improvement >= 0.0:
            problems.append(Problem("improvement", self.improvement, "must be a number >= 0"))
        for name in ("success_rounds", "failure_rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(Problem(name, value, "must be an integer >= 1"))
        if not problems and self.min_window > self.initial_window:
            message = (
                "min_window <= initial_window must hold, but got "
                f"min_window={self.min_window!r}, initial_window={self.initial_window!r}"
            )
            problems.append(Problem("min_window", self.min_window, message))
        if problems:
            raise SearchSpaceError(problems)

    def to_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrustRegion:
    """Where the search is focused and how that focus has fared; JSON-friendly as `to_dict`.

    `center` is None for a round over the whole space (the first, and the one after a restart);
    `since` is the history index where the current run (since the last restart) began, and
    `best` the lowest loss of that run when the box was last resized.
    """

    center: tuple[float, ...] | None = None
    window: float = 1.0
    best: float = math.inf
    successes: int = 0
    failures: int = 0
    restarts: int = 0
    since: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            # NaN: a choice value that the (edited) space no longer has; JSON has no NaN.
            "center": None if self.center is None else [_or_none(c) for c in self.center],
            "window": self.window,
            "best": None if math.isinf(self.best) else self.best,
            "successes": self.successes,
            "failures": self.failures,
            "restarts": self.restarts,
            "since": self.since,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> TrustRegion:
        center = d["center"]
        best = d["best"]
        return cls(
            # Why the type ignores below: from_dict reads what to_dict wrote, these types
            center=None if center is None else tuple(_or_nan(c) for c in center),  # type: ignore[attr-defined]
            window=float(d["window"]),  # type: ignore[arg-type]
            best=math.inf if best is None else float(best),  # type: ignore[arg-type]
            successes=int(d["successes"]),  # type: ignore[call-overload]
            failures=int(d["failures"]),  # type: ignore[call-overload]
            restarts=int(d["restarts"]),  # type: ignore[call-overload]
            since=int(d["since"]),  # type: ignore[call-overload]
        )


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _or_nan(value: object) -> float:
    # Why the type ignore below: a coordinate to_dict wrote: a float or None
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Box:
    """One round's region of the parent space.

    `low`/`high` are unit coordinates per parameter in space order (0 and 1 for a choice);
    `allowed` holds, per parameter, the indices of the choices still allowed (None if numeric).
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    allowed: tuple[tuple[int, ...] | None, ...]

    def to_dict(self) -> dict[str, object]:
        allowed = [None if a is None else list(a) for a in self.allowed]
        return {"low": list(self.low), "high": list(self.high), "allowed": allowed}

    @classmethod
    def from_dict(cls, d: dict[str, list]) -> Box:
        return cls(
            tuple(float(x) for x in d["low"]),
            tuple(float(x) for x in d["high"]),
            tuple(None if a is None else tuple(int(i) for i in a) for a in d["allowed"]),
        )


def full_box(space: SearchSpace) -> Box:
    allowed = tuple(
        tuple(range(len(d.values))) if isinstance(d, ChoiceDomain) else None
        for d in space.domains.values()
    )
    return Box((0.0,) * len(space), (1.0,) * len(space), allowed)


def cube_to_box(space: SearchSpace, box: Box, cube: np.ndarray) -> np.ndarray:
    """Points of the unit cube (n, len(space)) mapped into the box, choices onto allowed values.

    Here, beside `Box`, because both samplers in a box use it: `_box_sampling` and the model
    sampler it calls, `_surrogate`.
    """
    low, high = np.asarray(box.low), np.asarray(box.high)
    unit = low + cube * (high - low)
    for j, domain in enumerate(space.domains.values()):
        if isinstance(domain, ChoiceDomain):
            allowed = np.asarray(box.allowed[j])
            position = np.minimum((cube[:, j] * len(allowed)).astype(int), len(allowed) - 1)
            unit[:, j] = (allowed[position] + 0.5) / len(domain.values)
    return unit


def _run(tr: TrustRegion, losses: np.ndarray) -> np.ndarray:
    """Indices of the current run's points, best first (non-finite losses last)."""
    indices = np.arange(tr.since, len(losses))
    return indices[np.argsort(losses[indices], kind="stable")]


# A new incumbent this far from the old one (in half-widths of the box) suggests the box cut
# the optimum off. Growing on every improving round instead (TuRBO's rule) made the box swing
# back to the whole space and cost ~1.5x in median regret on the benchmark.
_EDGE_MOVE = 0.9


def next_region(
    tr: TrustRegion,
    points: np.ndarray,
    losses: np.ndarray,
    settings: NarrowingSettings,
    box: Box | None = None,
) -> TrustRegion:
    """The trust region after a completed round, given every point told so far.

    `points` holds unit coordinates (n, parameters), `losses` the minimised scores with every
    non-finite one already replaced by +inf, in the order they were told; `box` is the box the
    round sampled in.
    """
    ranked = _run(tr, losses)
    if len(ranked) == 0 or not np.isfinite(losses[ranked[0]]):
        return tr  # nothing usable yet: keep the current focus (the whole space at first)
    best = float(losses[ranked[0]])
    # History from a wider space may lie outside: the focus starts from the nearest point inside.
    center = tuple(np.clip(points[ranked[0]], 0.0, 1.0).tolist())
    if tr.center is None:
        return TrustRegion(center, settings.initial_window, best, 0, 0, tr.restarts, tr.since)
    finite = losses[ranked][np.isfinite(losses[ranked])]
    scale = float(np.median(finite) - best)
    improved = best < tr.best - settings.improvement * scale if scale > 0 else best < tr.best
    successes, failures, window = tr.successes, tr.failures, tr.window
    move = _displacement(tr.center, center, box)
    if improved and move >= _EDGE_MOVE:
        successes, failures = successes + 1, 0
        if successes >= settings.success_rounds:
            successes, window = 0, min(1.0, window * settings.expand)
    elif improved:
        successes, failures = 0, 0  # the box is about right: keep it, centred on the new best
    else:
        successes, failures = 0, failures + 1
        if failures >= settings.failure_rounds:
            failures, window = 0, window * settings.shrink
    if window < settings.min_window:
        # Collapsed: the next round covers the whole space again and starts a new run there.
        return TrustRegion(None, 1.0, math.inf, 0, 0, tr.restarts + 1, len(losses))
    best = min(best, tr.best)
    return TrustRegion(center, window, best, successes, failures, tr.restarts, tr.since)


def _displacement(old: tuple[float, ...], new: tuple[float, ...], box: Box | None) -> float:
    """How far the incumbent moved, in half-widths of the box (inf-norm over numeric axes)."""
    if box is None:
        return 1.0
    half = (np.asarray(box.high) - np.asarray(box.low)) / 2
    numeric = np.array([a is None for a in box.allowed]) & (half > 0)
    if not numeric.any():
        return 0.0
    delta = np.abs(np.asarray(new) - np.asarray(old))[numeric] / half[numeric]
    return float(np.max(np.nan_to_num(delta)))


def _elite_shape(
    tr: TrustRegion, points: np.ndarray, losses: np.ndarray, numeric: list[int], fraction: float
) -> np.ndarray:
    """Relative side lengths per numeric axis (geometric mean 1) from the elite's spread."""
    ranked = _run(tr, losses)
    ranked = ranked[np.isfinite(losses[ranked])]
    count = max(len(numeric) + 1, math.ceil(fraction * len(ranked)))
    elite = np.clip(points[ranked[:count]][:, numeric], 0.0, 1.0)
    if len(elite) < 2:
        return np.ones(len(numeric))
    spread = np.maximum(elite.std(axis=0), 1e-3)
    shape = spread / math.exp(float(np.mean(np.log(spread))))
    return np.clip(shape, 0.5, 2.0)


def _int_cell(domain: IntDomain, k: int) -> tuple[float, float]:
    """The unit-coordinate interval owned by integer k."""
    if domain.scale == "linear":
        count = domain.high - domain.low + 1
        return (k - domain.low) / count, (k - domain.low + 1) / count
    a, b = domain._log_edges()
    return (math.log(k - 0.5) - a) / (b - a), (math.log(k + 0.5) - a) / (b - a)


def _snap_int(domain: IntDomain, low: float, high: float, center: float) -> tuple[float, float]:
    """Whole cells covering [low, high], at least two, so every integer in it is equally served."""
    k_low, k_high = int(domain.from_unit(low)), int(domain.from_unit(high))
    if k_low == k_high:
        k_centre = int(domain.from_unit(center))
        left_room = k_low > domain.low
        if k_high < domain.high and (not left_room or k_centre >= k_low):
            k_high += 1
        else:
            k_low -= 1
    return _int_cell(domain, k_low)[0], _int_cell(domain, k_high)[1]


def region_box(
    tr: TrustRegion,
    space: SearchSpace,
    points: np.ndarray,
    losses: np.ndarray,
    settings: NarrowingSettings,
) -> Box:
    """The box of the next round: the trust region, shaped by the elite, inside the space."""
    if tr.center is None:
        return full_box(space)
    domains = list(space.domains.values())
    numeric = [j for j, d in enumerate(domains) if not isinstance(d, ChoiceDomain)]
    center = np.asarray(tr.center)
    low, high = np.zeros(len(domains)), np.ones(len(domains))
    if numeric:
        shape = _elite_shape(tr, points, losses, numeric, settings.elite_fraction)
        width = np.clip(tr.window * shape, settings.min_window, 1.0)
        lo = center[numeric] - width / 2
        # Panned, not clipped: a box pushed against an edge keeps its full size.
        lo = np.clip(lo, 0.0, 1.0 - width)
        low[numeric], high[numeric] = lo, lo + width
    allowed: list[tuple[int, ...] | None] = []
    ranked = _run(tr, losses)
    ranked = ranked[np.isfinite(losses[ranked])]
    elite = ranked[: max(1, math.ceil(settings.elite_fraction * len(ranked)))]
    for j, domain in enumerate(domains):
        if isinstance(domain, IntDomain):
            low[j], high[j] = _snap_int(domain, low[j], high[j], center[j])
        if isinstance(domain, ChoiceDomain):
            n = len(domain.values)
            # Unit coordinates of choices are cell centres; NaN marks a value the space lacks.
            coords = np.append(points[elite, j], center[j])
            used = {min(int(u * n), n - 1) for u in coords[np.isfinite(coords)]}
            allowed.append(tuple(sorted(used or {0})))
        else:
            allowed.append(None)
    return Box(tuple(low.tolist()), tuple(high.tolist()), tuple(allowed))


def box_domains(space: SearchSpace, box: Box) -> dict[str, FloatDomain | IntDomain | ChoiceDomain]:
    """The box as domains in the parameters' own units (what `narrowed_space` is made of)."""
    out: dict[str, FloatDomain | IntDomain | ChoiceDomain] = {}
    for j, (name, domain) in enumerate(space.domains.items()):
        if isinstance(domain, ChoiceDomain):
            allowed = box.allowed[j] or ()
            out[name] = ChoiceDomain(tuple(domain.values[i] for i in allowed))
        elif isinstance(domain, IntDomain):
            low = int(domain.from_unit(box.low[j] + 1e-12))
            high = int(domain.from_unit(box.high[j] - 1e-12))
            out[name] = IntDomain(low, high, domain.scale)
        else:
            low_value = float(domain.from_unit(box.low[j]))
            high_value = float(domain.from_unit(box.high[j]))
            if not low_value < high_value:  # a range too narrow for float64: keep the parent's
                low_value, high_value = domain.low, domain.high
            out[name] = FloatDomain(low_value, high_value, domain.scale)
    return out
