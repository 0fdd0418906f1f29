"""Spec against model: every fixed or searched name must be a hyperparameter of the trainable,
with values (or bounds, or choices) inside that hyperparameter's valid range."""

from __future__ import annotations

from collections.abc import Mapping

from search_spaces import ChoiceDomain, FloatDomain, IntDomain, SearchSpace
from sweeps._errors import Problem
from trainables import BUILTIN_ONLY, HYPERPARAMETERS, HyperParameter

__all__ = ["check_fixed", "check_searched"]


def _unknown(name: str, field: str, known: Mapping[str, HyperParameter]) -> Problem:
    valid = ", ".join(known)
    if known is not HYPERPARAMETERS and name in BUILTIN_ONLY:
        message = f"only the built-in bn_mlp has it; with this model the valid names are: {valid}"
        return Problem(field, name, message)
    return Problem(field, name, f"unknown hyperparameter; valid names: {valid}")


def check_fixed(
    fixed: Mapping[str, object],
    prefix: str,
    known: Mapping[str, HyperParameter] = HYPERPARAMETERS,
) -> list[Problem]:
    """`known`: the model's hyperparameters (a user's factory declares its own)."""
    problems = []
    for name, value in fixed.items():
        field = f"{prefix}.{name}"
        hp = known.get(name)
        if hp is None:
            problems.append(_unknown(name, field, known))
        elif (message := hp.check(value)) is not None:
            problems.append(Problem(field, value, message))
    return problems


def check_searched(
    space: SearchSpace,
    prefix: str,
    known: Mapping[str, HyperParameter] = HYPERPARAMETERS,
) -> list[Problem]:
    problems = []
    for name, domain in space.domains.items():
        field = f"{prefix}.{name}"
        hp = known.get(name)
        if hp is None:
            problems.append(_unknown(name, field, known))
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
