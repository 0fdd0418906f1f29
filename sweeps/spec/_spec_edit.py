"""Which edits of a spec a recorded search can continue under, and which contradict it.

More rounds, a larger or smaller round, other bounds, another sampler, other scales, more
epochs: the history still means what it meant, so the search continues from it. Another
objective, another model or dataset, another strategy, or a parameter removed or retyped: the
recorded scores or points no longer answer the new question, and continuing would mislead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from sweeps._errors import Problem, SpecError
from sweeps.spec._spec import Sweep
from sweeps.spec._strategy_table import STRATEGIES

__all__ = ["check_continuation"]

_HINT = "; start a new sweep (another `name`) for that"


def check_continuation(old: Mapping[str, Any], sweep: Sweep, recorded: pd.DataFrame) -> None:
    """Raise SpecError naming every edit that contradicts the recorded history."""
    new = sweep.spec.model_dump(mode="json")
    problems: list[Problem] = []
    for path in (("objective", "metric"), ("trainable", "model"), ("trainable", "dataset")):
        before, after = old[path[0]][path[1]], new[path[0]][path[1]]
        if before != after:
            message = f"was {before!r} in the recorded history{_HINT}"
            problems.append(Problem(".".join(path), after, message))
    old_mode = _mode(old["objective"])
    same_metric = old["objective"]["metric"] == new["objective"]["metric"]
    if same_metric and old_mode != sweep.spec.objective.resolved_mode:
        message = f"was {old_mode!r} in the recorded history{_HINT}"
        problems.append(Problem("objective.mode", sweep.spec.objective.resolved_mode, message))
    if old["strategy"]["kind"] != new["strategy"]["kind"]:
        continuing = " and ".join(k for k, row in STRATEGIES.items() if row.continues_after_edit)
        message = f"was {old['strategy']['kind']!r}; only {continuing} continues a search"
        problems.append(Problem("strategy.kind", new["strategy"]["kind"], message))
    old_space: Mapping[str, Mapping[str, Any]] = old["search_space"]
    for name, domain in old_space.items():
        if name not in sweep.space.names:
            message = f"was searched in the recorded history and cannot be removed{_HINT}"
            problems.append(Problem(f"search_space.{name}", "(removed)", message))
            continue
        new_type = sweep.space.domains[name].to_dict()["type"]
        if domain.get("type") != new_type:
            message = f"was {domain.get('type')!r} in the recorded history{_HINT}"
            problems.append(Problem(f"search_space.{name}.type", new_type, message))
    for name in sweep.space.names:
        if name in old_space or recorded.empty:
            continue
        if name not in recorded.columns or recorded[name].isna().any():
            message = "is new and the recorded history has no value for it"
            problems.append(Problem(f"search_space.{name}", name, message))
    if problems:
        raise SpecError(problems, source=sweep.source)


def _mode(objective: Mapping[str, Any]) -> str:
    if objective.get("mode"):
        return str(objective["mode"])
    return "max" if objective.get("metric") == "val_accuracy" else "min"
