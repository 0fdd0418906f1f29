"""`trainable: {function: module:function}`: a user's whole training loop, checked up front.

caviar still samples, narrows, records, resumes and re-tunes; what needs caviar's own loop is
refused in one line naming the field: packing, panda (it rolls back to caviar's checkpoints),
auto (its cost probe trains with caviar's loop), a `model` or `dataset` (the function builds and
loads its own), and the built-in MLP's names. Hyperparameter names are the function's own; a name
caviar also knows (`lr`, `optimizer`, ...) must keep that name's type and range, so the `trials`
column it shares means one thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search_spaces import ChoiceDomain, FloatDomain, IntDomain, SearchSpace
from sweeps._errors import Problem
from sweeps.spec._hparam_checks import check_fixed, check_searched
from trainables import BUILTIN_ONLY, HYPERPARAMETERS, HyperParameterError

__all__ = ["check_function_spec", "function_columns"]

_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}


def check_function_spec(
    reference: str,
    base: Path,
    *,
    fields_set: set[str],
    fixed: Mapping[str, Any],
    space: SearchSpace,
    strategy_kind: str,
    pack: object,
    strategy_refusal: str | None,
) -> list[Problem]:
    """Every problem of a spec whose trainable is a training function; `strategy_refusal` is
    why its strategy cannot run one (the strategy table's `refuses_function`), if it cannot."""
    from trainables import load_training_function  # imports torch, as the user's module does

    problems: list[Problem] = []
    try:
        load_training_function(reference, base)
    except HyperParameterError as exc:
        problems.append(Problem(exc.field, exc.value, exc.message))
    why = {
        "model": "a training function builds its own model; leave trainable.model out",
        "dataset": "a training function loads its own data; leave trainable.dataset out",
    }
    problems += [Problem(f"trainable.{key}", key, why[key]) for key in why if key in fields_set]
    if pack != 1:
        message = "packing trains configurations in caviar's loop; a training function owns its own"
        problems.append(Problem("pack", pack, message))
    if strategy_refusal is not None:
        message = f"{strategy_refusal}; sample instead"
        problems.append(Problem("strategy.kind", strategy_kind, message))
    for prefix, names in (("trainable.fixed", list(fixed)), ("search_space", space.names)):
        for name in names:
            if name in BUILTIN_ONLY:
                message = "a name of the built-in MLP's; give your function's its own name"
                problems.append(Problem(f"{prefix}.{name}", name, message))
    known = {n: hp for n, hp in HYPERPARAMETERS.items() if n not in BUILTIN_ONLY}
    shared_fixed = {n: v for n, v in fixed.items() if n in known}
    problems += check_fixed(shared_fixed, "trainable.fixed", known)
    shared = {n: d for n, d in space.domains.items() if n in known}
    if shared:
        problems += check_searched(SearchSpace(shared), "search_space", known)
    for name, domain in space.domains.items():
        if isinstance(domain, ChoiceDomain) and len({type(v) for v in domain.values}) > 1:
            message = "choices of one type (they become one trials column)"
            problems.append(Problem(f"search_space.{name}.values", list(domain.values), message))
    for name, value in fixed.items():
        if name not in HYPERPARAMETERS and type(value) not in _KINDS:
            message = "a fixed value is a bool, int, float or str (it becomes a trials column)"
            problems.append(Problem(f"trainable.fixed.{name}", value, message))
    return problems


def function_columns(fixed: Mapping[str, Any], space: SearchSpace) -> dict[str, str]:
    """The function's own names (not caviar's) and their `trials` column kinds."""
    columns: dict[str, str] = {}
    for name, value in fixed.items():
        columns[name] = _KINDS.get(type(value), "str")
    for name, domain in space.domains.items():
        if isinstance(domain, FloatDomain):
            columns[name] = "float"
        elif isinstance(domain, IntDomain):
            columns[name] = "int"
        elif isinstance(domain, ChoiceDomain):
            columns[name] = _KINDS.get(type(domain.values[0]), "str")  # one type: checked
    return {name: kind for name, kind in columns.items() if name not in HYPERPARAMETERS}
