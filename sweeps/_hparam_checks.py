"""Spec against model: every fixed or searched name must be a hyperparameter of the trainable,
with values (or bounds, or choices) inside that hyperparameter's valid range."""

from __future__ import annotations

from collections.abc import Mapping

from search_spaces import ChoiceDomain, FloatDomain, IntDomain, SearchSpace
from sweeps._errors import Problem
from trainables import HYPERPARAMETERS

__all__ = ["check_fixed", "check_searched"]


def _unknown(name: str, field: str) -> Problem:
    valid = ", ".join(HYPERPARAMETERS)
    return Problem(field, name, f"unknown hyperparameter; valid names: {valid}")


def check_fixed(fixed: Mapping[str, object], prefix: str) -> list[Problem]:
    problems = []
    for name, value in fixed.items():
        field = f"{prefix}.{name}"
        hp = HYPERPARAMETERS.get(name)
        if hp is None:
            problems.append(_unknown(name, field))
        elif (message := hp.check(value)) is not None:
            problems.append(Problem(field, value, message))
    return problems


def check_searched(space: SearchSpace, prefix: str) -> list[Problem]:
    problems = []
    for name, domain in space.domains.items():
        field = f"{prefix}.{name}"
        hp = HYPERPARAMETERS.get(name)
        if hp is None:
            problems.append(_unknown(name, field))
            continue
        if isinstance(domain, ChoiceDomain):
            for i, value in enumerate(domain.values):
                if (message := hp.check(value)) is not None:
                    problems.append(Problem(f"{field}.values[{i}]", value, message))
            continue
        wanted = {"float": FloatDomain, "int": IntDomain}.get(hp.kind)
        if wanted is None or not isinstance(domain, FloatDomain | IntDomain):
            problems.append(
                Problem(
                    f"{field}.type",
                    _type_name(domain),
                    f"{name} takes {hp.kind} values; search it with type: choice",
                )
            )
            continue
        if hp.kind == "int" and isinstance(domain, FloatDomain):
            problems.append(
                Problem(f"{field}.type", "float", f"{name} is an integer; use type: int")
            )
            continue
        for bound in ("low", "high"):
            value = getattr(domain, bound)
            if (message := hp.check(value)) is not None:
                problems.append(Problem(f"{field}.{bound}", value, message))
    return problems


def _type_name(domain: object) -> str:
    return {FloatDomain: "float", IntDomain: "int"}.get(type(domain), "choice")
