"""A search space: named domains, validated together, with whole-configuration conversions.

A configuration is a plain dict of Python scalars ({"lr": 0.01, "batch_size": 64}); its unit
vector stacks each parameter's unit coordinate in `names` order, so samplers and strategies work
in the unit cube [0, 1]^d and never need to know about scales.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, cast

import numpy as np

from ._domains import ChoiceDomain, Domain, FloatDomain, IntDomain, domain_from_dict
from ._errors import Problem, SearchSpaceError, prefixed
from ._searcher_safe import searcher_safe_key

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOMAIN_TYPES = (FloatDomain, IntDomain, ChoiceDomain)


def _is_reverse_log(domain: object) -> bool:
    return isinstance(domain, FloatDomain) and domain.scale == "reverse_log"


def _name_problems(names: Iterable[object]) -> list[Problem]:
    return [
        Problem(str(name), name, f"parameter names must match {_NAME.pattern}")
        for name in names
        if not isinstance(name, str) or not _NAME.fullmatch(name)
    ]


def _clash_problems(domains: Mapping[str, object]) -> list[Problem]:
    """Names that the searcher-safe Ray Tune key of a reverse_log parameter would shadow."""
    problems = []
    for name, domain in domains.items():
        key = searcher_safe_key(name)
        if _is_reverse_log(domain) and key in domains:
            message = f"clashes with the searcher-safe Ray Tune key of reverse_log {name!r}"
            problems.append(Problem(key, key, message))
    return problems


class SearchSpace:
    """The searched parameters of a sweep, in the order the spec lists them."""

    def __init__(self, domains: Mapping[str, Domain]) -> None:
        problems = [] if domains else [Problem("", dict(domains), "the search space is empty")]
        problems += _name_problems(domains) + _clash_problems(domains)
        problems += [
            Problem(str(name), domain, "must be a FloatDomain, IntDomain or ChoiceDomain")
            for name, domain in domains.items()
            if not isinstance(domain, _DOMAIN_TYPES)
        ]
        if problems:
            raise SearchSpaceError(problems)
        self._domains: Mapping[str, Domain] = MappingProxyType(dict(domains))
        self.names: tuple[str, ...] = tuple(domains)

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, object]]) -> SearchSpace:
        """Build a space from the spec's `search_space` mapping, reporting every problem at once."""
        if not isinstance(d, Mapping):
            raise SearchSpaceError([Problem("", d, "must be a mapping of names to domains")])
        if not d:
            raise SearchSpaceError([Problem("", dict(d), "the search space is empty")])
        problems: list[Problem] = []
        domains: dict[str, Domain] = {}
        for name, spec in d.items():
            if not isinstance(spec, Mapping):
                example = "{type: float, low: 0, high: 1}"
                problems.append(Problem(str(name), spec, f"must be a mapping such as {example}"))
                continue
            try:
                domains[name] = domain_from_dict(spec)
            except SearchSpaceError as err:
                problems += prefixed(str(name), err.problems)
        problems = _name_problems(d) + problems + _clash_problems(domains)
        if problems:
            raise SearchSpaceError(problems)
        return cls(domains)

    @property
    def domains(self) -> Mapping[str, Domain]:
        return self._domains

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return list(self._domains.items()) == list(other._domains.items())

    def __hash__(self) -> int:
        return hash(tuple(self._domains.items()))

    def __repr__(self) -> str:
        return f"SearchSpace({dict(self._domains)!r})"

    def __reduce__(self) -> tuple[type[SearchSpace], tuple[dict[str, Domain]]]:
        # A mappingproxy cannot be pickled, and Ray pickles whatever a trainable closes over.
        return (type(self), (dict(self._domains),))

    def sample(self, rng: np.random.Generator, n: int) -> list[dict[str, object]]:
        """n independent configurations, each parameter uniform in its unit coordinate."""
        # One row of draws per parameter, so parameter i sees the same stream as
        # `domains[i].sample(rng, n)` called in order.
        return configs_from_unit(self, rng.random((len(self), n)).T)

    def to_unit(self, config: Mapping[str, object]) -> np.ndarray:
        """The unit vector of config, shape (len(names),).

        Keys outside the space are ignored, so a whole trial config (fixed parameters and all)
        can be passed; the space's own parameters must be present and valid.
        """
        problems = self._value_problems(config)
        if problems:
            raise SearchSpaceError(problems)
        return np.array(
            [self._domains[name].to_unit(cast(Any, config[name])) for name in self.names],
            dtype=np.float64,
        )

    def from_unit(self, u: Sequence[float] | np.ndarray) -> dict[str, object]:
        """The configuration at unit vector u (each coordinate clipped into [0, 1])."""
        point = np.asarray(u, dtype=np.float64)
        if point.shape != (len(self),):
            raise ValueError(f"expected a unit vector of shape ({len(self)},), got {point.shape}")
        return configs_from_unit(self, point[np.newaxis, :])[0]

    def check_config(self, config: Mapping[str, object]) -> None:
        """Raise SearchSpaceError unless config sets exactly this space's parameters, validly."""
        if not isinstance(config, Mapping):
            raise SearchSpaceError([Problem("", config, "a configuration must be a mapping")])
        valid = ", ".join(self.names)
        problems = self._value_problems(config)
        problems += [
            Problem(str(name), value, f"unknown parameter; valid names: {valid}")
            for name, value in config.items()
            if name not in self._domains
        ]
        if problems:
            raise SearchSpaceError(problems)

    def _value_problems(self, config: Mapping[str, object]) -> list[Problem]:
        problems = []
        for name, domain in self._domains.items():
            if name not in config:
                problems.append(Problem(name, dict(config), "missing from the configuration"))
            elif (why := domain._why_not(config[name])) is not None:
                problems.append(Problem(name, config[name], why))
        return problems

    def to_dict(self) -> dict[str, dict[str, object]]:
        """The YAML form; `SearchSpace.from_dict(space.to_dict()) == space`."""
        return {name: domain.to_dict() for name, domain in self._domains.items()}

    def to_tune(self, *, searcher_safe: bool = False) -> dict[str, object]:
        """Ray Tune domains for `param_space`; see `search_spaces._tune` for the two modes."""
        from ._tune import to_tune  # Ray is heavy and only the orchestration layer needs it.

        return to_tune(self._domains, searcher_safe=searcher_safe)

    def from_tune(self, config: Mapping[str, object]) -> dict[str, object]:
        """Undo searcher-safe renaming: `one_minus_beta` becomes `beta`; other keys pass through."""
        renamed = {
            searcher_safe_key(name): (name, domain)
            for name, domain in self._domains.items()
            if isinstance(domain, FloatDomain) and domain.scale == "reverse_log"
        }
        out: dict[str, object] = {}
        for key, value in config.items():
            if key in renamed:
                name, domain = renamed[key]
                # Clipped because 1 - (1 - beta) can land an ulp outside the bounds.
                # Why the type ignore below: a value the searcher drew for this float domain
                beta = 1.0 - np.float64(value)  # type: ignore[arg-type]
                out[name] = float(np.clip(beta, domain.low, domain.high))
            else:
                out[key] = value
        return out


def configs_from_unit(space: SearchSpace, u: np.ndarray) -> list[dict[str, object]]:
    """One configuration per row of u (shape (n, len(space))), vectorised per parameter."""
    columns: Iterable[list[object]] = (
        np.asarray(domain.from_unit(u[:, j])).tolist()
        for j, domain in enumerate(space.domains.values())
    )
    return [dict(zip(space.names, row, strict=True)) for row in zip(*columns, strict=True)]
