"""The three kinds of searched parameter (float, int, choice) and their YAML form.

Each domain is a small frozen value that checks its invariants once, when built, so samplers,
strategies and the Ray adapter can trust it. Every domain maps its values to a *unit coordinate*
u in [0, 1] in which uniform sampling is the intended distribution: a log-scaled learning rate is
uniform in log-space, and a reverse-log momentum `beta` is uniform in log(1 - beta). Samplers
(random, Sobol, grids, coarse-to-fine) therefore work in the unit cube and never need to know
about scales.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import numpy as np

from ._errors import Problem, SearchSpaceError

FloatScale = Literal["linear", "log", "reverse_log"]
IntScale = Literal["linear", "log"]
FLOAT_SCALES: tuple[str, ...] = get_args(FloatScale)
INT_SCALES: tuple[str, ...] = get_args(IntScale)

# A key absent from the YAML form: its own checks are skipped and "missing key" is reported instead,
# so one pass still finds every other problem.
_MISSING = object()


def _as_output(a: np.ndarray) -> Any:
    """Scalars in, scalars out: a 0-d result becomes a Python scalar, arrays stay arrays."""
    return a.item() if a.ndim == 0 else a


def _as_number(name: str, value: object, *, integer: bool) -> float | Problem:
    """value as a float, or the problem that stops it being a valid bound."""
    kind = "an integer" if integer else "a number"
    # bool is an int subclass, but `low: true` is always a typo, never a bound.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return Problem(name, value, f"must be {kind}")
    number = float(value)
    if not math.isfinite(number):
        return Problem(name, value, "must be finite")
    if integer and not number.is_integer():
        return Problem(name, value, "must be an integer")
    return number


def _bounds_problems(
    low: object, high: object, scale: object, scales: tuple[str, ...], *, integer: bool
) -> list[Problem]:
    """Every problem with (low, high, scale); a `_MISSING` value skips the checks that need it."""
    problems: list[Problem] = []
    bounds: dict[str, float] = {}
    for name, value in (("low", low), ("high", high)):
        if value is _MISSING:
            continue
        number = _as_number(name, value, integer=integer)
        if isinstance(number, Problem):
            problems.append(number)
        else:
            bounds[name] = number
    if scale is not _MISSING and scale not in scales:
        valid = ", ".join(repr(s) for s in scales)
        problems.append(Problem("scale", scale, f"must be one of {valid}"))
    if "low" in bounds and "high" in bounds and not bounds["low"] < bounds["high"]:
        message = f"low < high must hold, but got low={low!r}, high={high!r}"
        problems.append(Problem("high", high, message))
    if scale == "log" and "low" in bounds:
        if integer and not bounds["low"] >= 1:
            problems.append(Problem("low", low, "must be >= 1 for an int with scale=log"))
        elif not integer and not bounds["low"] > 0:
            problems.append(Problem("low", low, "must be > 0 for scale=log"))
    if scale == "reverse_log" and "high" in bounds and not bounds["high"] < 1:
        problems.append(Problem("high", high, "must be < 1 for scale=reverse_log"))
    return problems


@dataclass(frozen=True)
class FloatDomain:
    """A real parameter on [low, high], uniform in the coordinate its `scale` names.

    `reverse_log` is for parameters that matter through their distance to 1 (momentum, Adam's
    betas): 1 - x is log-uniform, so beta in [0.9, 0.999] gets as many draws in 0.9-0.99 as in
    0.99-0.999, where a linear scale would spend 90% of them below 0.99.
    """

    low: float
    high: float
    scale: FloatScale = "linear"

    def __post_init__(self) -> None:
        problems = _bounds_problems(self.low, self.high, self.scale, FLOAT_SCALES, integer=False)
        if problems:
            raise SearchSpaceError(problems)
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    def _log1m_bounds(self) -> tuple[float, float]:
        # log1p keeps 1 - x accurate when x is close to 1, where reverse_log matters most.
        return math.log1p(-self.low), math.log1p(-self.high)

    def to_unit(self, x: float | np.ndarray) -> float | np.ndarray:
        """The unit coordinate of x; increasing in x. Meant for values inside the domain."""
        x = np.asarray(x, dtype=np.float64)
        if self.scale == "linear":
            u = (x - self.low) / (self.high - self.low)
        elif self.scale == "log":
            u = np.log(x / self.low) / math.log(self.high / self.low)
        else:
            a, b = self._log1m_bounds()
            u = (np.log1p(-x) - a) / (b - a)
        return _as_output(u)

    def from_unit(self, u: float | np.ndarray) -> float | np.ndarray:
        """The value at unit coordinate u (clipped into [0, 1]); always inside [low, high]."""
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.scale == "linear":
            x = self.low + u * (self.high - self.low)
        elif self.scale == "log":
            x = np.exp(math.log(self.low) + u * math.log(self.high / self.low))
        else:
            a, b = self._log1m_bounds()
            x = -np.expm1(a + u * (b - a))
        x = np.clip(x, self.low, self.high)
        # Exact ends, so a grid or a corner of the cube shows the bounds the user wrote.
        x = np.where(u == 0.0, self.low, np.where(u == 1.0, self.high, x))
        return _as_output(x)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent draws (float64), uniform in the unit coordinate."""
        return np.asarray(self.from_unit(rng.random(n)), dtype=np.float64)

    def _why_not(self, x: object) -> str | None:
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            return "must be a number"
        if not self.low <= float(x) <= self.high:
            return f"must lie in [{self.low!r}, {self.high!r}]"
        return None

    def contains(self, x: object) -> bool:
        return self._why_not(x) is None

    def to_dict(self) -> dict[str, object]:
        return {"type": "float", "low": self.low, "high": self.high, "scale": self.scale}


@dataclass(frozen=True)
class IntDomain:
    """An integer parameter on [low, high] (both included).

    Each integer k owns the cell [k - 0.5, k + 0.5] of the real line (in log-space for
    scale=log, so k's probability is proportional to log((k + 0.5) / (k - 0.5))); the unit
    coordinate of k is the centre of its cell, so from_unit(to_unit(k)) == k exactly.
    """

    low: int
    high: int
    scale: IntScale = "linear"

    def __post_init__(self) -> None:
        problems = _bounds_problems(self.low, self.high, self.scale, INT_SCALES, integer=True)
        if problems:
            raise SearchSpaceError(problems)
        object.__setattr__(self, "low", int(self.low))
        object.__setattr__(self, "high", int(self.high))

    def _log_edges(self) -> tuple[float, float]:
        return math.log(self.low - 0.5), math.log(self.high + 0.5)

    def to_unit(self, x: int | np.ndarray) -> float | np.ndarray:
        """The centre of the unit-coordinate cell of x (x is rounded to the nearest integer)."""
        k = np.floor(np.asarray(x, dtype=np.float64) + 0.5)
        if self.scale == "linear":
            u = (k - self.low + 0.5) / (self.high - self.low + 1)
        else:
            a, b = self._log_edges()
            centre = 0.5 * (np.log(k - 0.5) + np.log(k + 0.5))
            u = (centre - a) / (b - a)
        return _as_output(u)

    def from_unit(self, u: float | np.ndarray) -> int | np.ndarray:
        """The integer whose cell holds u (clipped into [0, 1]); always inside [low, high]."""
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.scale == "linear":
            count = self.high - self.low + 1
            k = self.low + np.minimum(np.floor(u * count), count - 1)
        else:
            a, b = self._log_edges()
            k = np.floor(np.exp(a + u * (b - a)) + 0.5)
        return _as_output(np.clip(k, self.low, self.high).astype(np.int64))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent draws (int64), uniform in the unit coordinate."""
        return np.asarray(self.from_unit(rng.random(n)), dtype=np.int64)

    def _why_not(self, x: object) -> str | None:
        number = _as_number("", x, integer=True)
        if isinstance(number, Problem):
            return "must be an integer"
        if not self.low <= number <= self.high:
            return f"must lie in [{self.low!r}, {self.high!r}]"
        return None

    def contains(self, x: object) -> bool:
        return self._why_not(x) is None

    def to_dict(self) -> dict[str, object]:
        return {"type": "int", "low": self.low, "high": self.high, "scale": self.scale}


def plain_value(value: object) -> object:
    """numpy scalars become Python ones, so configs print, compare and serialise plainly."""
    return value.item() if isinstance(value, np.generic) else value


def _choice_key(value: object) -> tuple[bool, object]:
    # 1 and 1.0 are the same choice, but True is not 1: YAML users mean different things by them.
    return (isinstance(value, bool), value)


def _choice_problems(values: object) -> list[Problem]:
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple):
        return [Problem("values", values, "must be a list of choices")]
    if not values:
        return [Problem("values", values, "must not be empty")]
    problems: list[Problem] = []
    seen: set[tuple[bool, object]] = set()
    for value in map(plain_value, values):
        if isinstance(value, numbers.Real) and not math.isfinite(value):
            problems.append(Problem("values", value, "choices must be finite"))
        elif not isinstance(value, str | numbers.Real):
            problems.append(Problem("values", value, "choices must be str, int, float or bool"))
        elif _choice_key(value) in seen:
            problems.append(Problem("values", value, "duplicate choice"))
        else:
            seen.add(_choice_key(value))
    return problems


@dataclass(frozen=True)
class ChoiceDomain:
    """One of a fixed, unordered set of values; each owns an equal cell of the unit interval."""

    values: tuple[object, ...]
    _index: dict[tuple[bool, object], int] = field(init=False, repr=False, compare=False)
    _table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = _choice_problems(self.values)
        if problems:
            raise SearchSpaceError(problems)
        values = tuple(plain_value(v) for v in self.values)
        table = np.empty(len(values), dtype=object)
        table[:] = values
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_index", {_choice_key(v): i for i, v in enumerate(values)})
        object.__setattr__(self, "_table", table)

    def _position(self, x: object) -> int:
        if self._why_not(x) is not None:
            raise ValueError(f"{x!r} is not one of the choices {list(self.values)!r}")
        return self._index[_choice_key(plain_value(x))]

    def to_unit(self, x: object) -> float | np.ndarray:
        """The centre of x's cell; an ndarray of values gives an array of coordinates."""
        n = len(self.values)
        if isinstance(x, np.ndarray):
            positions = np.array([self._position(v) for v in x.ravel()], dtype=np.float64)
            return (positions.reshape(x.shape) + 0.5) / n
        return (self._position(x) + 0.5) / n

    def from_unit(self, u: float | np.ndarray) -> object:
        """The value whose cell holds u (clipped into [0, 1]); an object array for array input."""
        n = len(self.values)
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        positions = np.minimum(np.floor(u * n), n - 1).astype(np.int64)
        return self._table[positions]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent draws (object array), each value equally likely."""
        return np.asarray(self.from_unit(rng.random(n)), dtype=object)

    def _why_not(self, x: object) -> str | None:
        x = plain_value(x)
        if not isinstance(x, str | numbers.Real) or _choice_key(x) not in self._index:
            return f"must be one of {list(self.values)!r}"
        return None

    def contains(self, x: object) -> bool:
        return self._why_not(x) is None

    def to_dict(self) -> dict[str, object]:
        return {"type": "choice", "values": list(self.values)}


Domain = FloatDomain | IntDomain | ChoiceDomain

_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "float": ("low", "high"),
    "int": ("low", "high"),
    "choice": ("values",),
}
_OPTIONAL_KEYS: dict[str, tuple[str, ...]] = {"float": ("scale",), "int": ("scale",), "choice": ()}


def domain_from_dict(d: Mapping[str, object]) -> Domain:
    """Build a domain from its YAML form, e.g. {type: float, low: 1e-4, high: 1, scale: log}.

    Raises SearchSpaceError listing every problem (unknown, missing and invalid keys) at once.
    """
    if not isinstance(d, Mapping):
        message = "must be a mapping such as {type: float, low: 0, high: 1}"
        raise SearchSpaceError([Problem("", d, message)])
    kind = d.get("type", _MISSING)
    if kind is _MISSING:
        raise SearchSpaceError([Problem("type", dict(d), f"missing key; one of {_kinds()}")])
    if not isinstance(kind, str) or kind not in _REQUIRED_KEYS:
        raise SearchSpaceError([Problem("type", kind, f"must be one of {_kinds()}")])
    required, optional = _REQUIRED_KEYS[kind], _OPTIONAL_KEYS[kind]
    valid = ("type", *required, *optional)
    problems = [
        Problem(str(key), value, f"unknown key; valid keys: {', '.join(valid)}")
        for key, value in d.items()
        if key not in valid
    ]
    problems += [Problem(key, dict(d), "missing key") for key in required if key not in d]
    if kind == "choice":
        values = d.get("values", _MISSING)
        problems += [] if values is _MISSING else _choice_problems(values)
    else:
        low, high = d.get("low", _MISSING), d.get("high", _MISSING)
        scales = FLOAT_SCALES if kind == "float" else INT_SCALES
        scale = d.get("scale", "linear")
        problems += _bounds_problems(low, high, scale, scales, integer=kind == "int")
    if problems:
        raise SearchSpaceError(problems)
    if kind == "choice":
        return ChoiceDomain(tuple(cast(list[object], d["values"])))
    low, high = cast(float, d["low"]), cast(float, d["high"])
    if kind == "float":
        return FloatDomain(low, high, cast(FloatScale, d.get("scale", "linear")))
    return IntDomain(int(low), int(high), cast(IntScale, d.get("scale", "linear")))


def _kinds() -> str:
    return ", ".join(repr(k) for k in _REQUIRED_KEYS)
