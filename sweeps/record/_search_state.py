"""What an adaptive strategy has decided so far, persisted beside the results.

Coarse-to-fine chooses each round's points from the results of the rounds before, so unlike a
random plan its points cannot be regenerated from the spec after a crash. The driver saves this
record (atomically) every time it asks for a round, *before* any trial of the round starts:
the strategy's own `state_dict`, every point it planned with its trial id and round, and the
spec it ran under. Scores are not kept here: `trials` is the one source of truth for them, and
`--resume` tells the strategy whatever `trials` holds that this record has not seen yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from analysis import ResultsPath, SweepLayout, write_text_atomically
from sweeps.plan import PlannedPoint

__all__ = ["SearchState", "load_search_state", "save_search_state"]

_FORMAT = 1


@dataclass
class SearchState:
    run_id: str
    spec: dict[str, Any]  # the spec (as JSON) the latest round was asked under
    strategy: dict[str, Any]  # CoarseToFine.state_dict()
    planned: list[PlannedPoint] = field(default_factory=list)
    told: set[str] = field(default_factory=set)  # trial ids the strategy state already holds

    @property
    def next_index(self) -> int:
        return max((p.index for p in self.planned), default=-1) + 1


def _path(sweep_dir: ResultsPath, run_id: str) -> ResultsPath:
    return SweepLayout(sweep_dir).search_state(run_id)


def save_search_state(sweep_dir: ResultsPath, state: SearchState) -> None:
    path = _path(sweep_dir, state.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "format": _FORMAT,
        "run_id": state.run_id,
        "spec": state.spec,
        "strategy": state.strategy,
        "planned": [
            {"index": p.index, "round": p.round, "params": p.params, "origin": p.origin}
            for p in state.planned
        ],
        "told": sorted(state.told),
    }
    write_text_atomically(path, json.dumps(data, allow_nan=False))


def load_search_state(sweep_dir: ResultsPath, run_id: str) -> SearchState | None:
    path = _path(sweep_dir, run_id)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if data.get("format") != _FORMAT:
        raise ValueError(f"{path}: search state of format {data.get('format')!r}, not {_FORMAT}")
    return SearchState(
        run_id=data["run_id"],
        spec=data["spec"],
        strategy=data["strategy"],
        planned=[PlannedPoint(**p) for p in data["planned"]],
        told=set(data["told"]),
    )
