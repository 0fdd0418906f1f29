"""Coarse-to-fine on a cluster: rounds asked from `search_spaces.CoarseToFine`, run on Ray Tune.

An outer driver with its own persisted state, rather than a Ray `Searcher` that Ray checkpoints,
because caviar resumes from its results, not from Ray's experiment directory: a resumed run
starts a fresh Tuner, and an edited spec must be able to continue the search, which Ray's
restore (same searcher, same space) cannot do. See docs/coarse-to-fine.md.

No idle barrier: once `start_next_at` of a round is recorded and the cluster asks for more
work, the round is closed and the next one asked; the stragglers keep running and their
results inform the rounds after.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa

from analysis import ResultsStore
from search_spaces import CoarseToFine
from sweeps.plan import PlannedPoint, Point, recorded_score
from sweeps.record import SearchState, load_search_state, save_search_state
from sweeps.spec import CoarseToFineStrategy, Sweep

__all__ = ["CoarseToFineProposer", "rounds_schema"]

log = logging.getLogger(__name__)


def rounds_schema() -> pa.Schema:
    """One row per (round, parameter): the bounds that round sampled in."""
    return pa.schema(
        [
            ("sweep", pa.string()),
            ("run_id", pa.string()),
            ("round", pa.int32()),
            ("parameter", pa.string()),
            ("type", pa.string()),
            ("scale", pa.string()),
            ("low", pa.float64()),
            ("high", pa.float64()),
            ("values", pa.string()),  # JSON list, for choice parameters
            ("configs", pa.int64()),
            ("recorded_before", pa.int64()),  # results the narrowing had when the round was asked
            ("spec_digest", pa.string()),
            ("asked_at", pa.timestamp("us", tz="UTC")),
        ]
    )


class CoarseToFineProposer:
    """Proposes `initial` points, then each round's points; persists before a round starts."""

    def __init__(
        self,
        sweep: Sweep,
        store: ResultsStore,
        state: SearchState,
        search: CoarseToFine,
        queue: list[PlannedPoint],
    ) -> None:
        strategy = sweep.spec.strategy
        if not isinstance(strategy, CoarseToFineStrategy):
            raise TypeError(f"not a {CoarseToFineStrategy.__name__}: {strategy.kind}")
        self._sweep = sweep
        self._strategy = strategy
        self._store = store
        self._state = state
        self._search = search
        self._queue = queue
        self._round_size: dict[int, int] = {}
        for point in state.planned:
            if point.origin == strategy.kind:  # a round's own points, not `initial`
                self._round_size[point.round] = self._round_size.get(point.round, 0) + 1
        self._proposed = 0
        self._total = len(queue) + (search.rounds - search.round) * strategy.per_round
        if search.awaiting:  # the pending round's unrecorded points are in the queue already
            self._total -= strategy.per_round

    # --- construction: fresh, resumed, or continued under an edited spec -------------------

    @classmethod
    def open(
        cls,
        sweep: Sweep,
        store: ResultsStore,
        run_id: str,
        initial: list[Point],
        recorded: pd.DataFrame,
        *,
        edited: bool,
    ) -> CoarseToFineProposer:
        """`recorded`: this run's `trials` rows so far (empty for a fresh run)."""
        state = load_search_state(store.sweep_dir, run_id)
        if edited:
            return cls._continue_edited(sweep, store, run_id, initial, recorded, state)
        if state is None:
            search = _new_search(sweep)
            planned = [PlannedPoint(p.index, 0, dict(p.params), p.origin) for p in initial]
            state = SearchState(run_id, _spec_json(sweep), search.state_dict(), planned)
        else:
            search = CoarseToFine.from_state_dict(state.strategy)
        scores = _scores(sweep, recorded)
        for point in state.planned:  # results recorded after the state was last saved
            if point.trial_id in scores and point.trial_id not in state.told:
                search.tell([point.params], [scores[point.trial_id]])
                state.told.add(point.trial_id)
        queue = [p for p in state.planned if p.trial_id not in scores]
        state.strategy = search.state_dict()
        save_search_state(store.sweep_dir, state)
        proposer = cls(sweep, store, state, search, queue)
        proposer._write_missing_bounds()
        if scores:
            log.info(
                "resuming coarse-to-fine at round %d/%d with %d results, %d points to rerun",
                search.round, search.rounds, len(scores), len(queue),
            )  # fmt: skip
        return proposer

    @classmethod
    def _continue_edited(
        cls,
        sweep: Sweep,
        store: ResultsStore,
        run_id: str,
        initial: list[Point],
        recorded: pd.DataFrame,
        state: SearchState | None,
    ) -> CoarseToFineProposer:
        """Replay every recorded result under the new spec; the old plan's leftovers are dropped.

        The edit was checked against the history before anything was written (`choose_run`).

        History outside the new bounds still informs the narrowing (CoarseToFine.replay places
        it outside the unit box); new points stay inside the new space.
        """
        strategy = sweep.spec.strategy
        assert isinstance(strategy, CoarseToFineStrategy)
        scores = _scores(sweep, recorded)
        history = [
            (_config_of(sweep, row), scores[row["trial_id"]]) for row in recorded.to_dict("records")
        ]
        rounds_done = int(state.strategy["round"]) if state is not None else 0
        search = CoarseToFine.replay(
            sweep.space,
            history,
            rounds=strategy.rounds,
            per_round=strategy.per_round,
            seed=sweep.spec.seed,
            mode=sweep.spec.objective.resolved_mode,
            sampler=strategy.sampler,
            rounds_done=min(rounds_done, strategy.rounds),
        )
        kept = [p for p in (state.planned if state else []) if p.trial_id in scores]
        next_index = max([p.index for p in kept] + [int(i) for i in _indexes(recorded)] + [-1]) + 1
        seen = [_config_of(sweep, row) for row in recorded.to_dict("records")]
        queue = []
        for point in initial:  # `initial` points the history has not evaluated yet
            if dict(point.params) not in seen:
                queue.append(PlannedPoint(next_index, search.round, dict(point.params), "initial"))
                next_index += 1
        dropped = len(state.planned) - len(kept) if state else 0
        state = SearchState(
            run_id, _spec_json(sweep), search.state_dict(), kept + queue, set(scores)
        )
        save_search_state(store.sweep_dir, state)
        log.warning(
            "spec changed: continuing run %s from %d recorded results at round %d/%d"
            " (%d unfinished points of the old spec dropped)",
            run_id, len(history), search.round, search.rounds, dropped,
        )  # fmt: skip
        return cls(sweep, store, state, search, queue)

    # --- the Proposer protocol --------------------------------------------------------------

    @property
    def total(self) -> int:
        return self._total

    @property
    def finished(self) -> bool:
        return self._search.finished and not self._queue

    @property
    def label(self) -> str:
        shown = min(self._search.round + (1 if self._search.awaiting else 0), self._search.rounds)
        return f"round {max(shown, 1)}/{self._search.rounds}"

    @property
    def batch(self) -> int:
        return self._strategy.per_round

    def propose(self) -> PlannedPoint | None:
        if not self._queue and not self._search.finished and self._may_ask():
            self._ask()
        if not self._queue:
            return None
        self._proposed += 1
        return self._queue.pop(0)

    def take_queued(self, match: Callable[[PlannedPoint], bool]) -> PlannedPoint | None:
        for i, point in enumerate(self._queue):
            if match(point):
                self._proposed += 1
                return self._queue.pop(i)
        return None

    def record(self, point: PlannedPoint, score: float | None) -> None:
        if point.trial_id in self._state.told:
            return
        completed = self._search.round
        self._search.tell([point.params], [score])
        self._state.told.add(point.trial_id)
        if self._search.round != completed:  # a round completed: keep where the search is
            self._state.strategy = self._search.state_dict()
            save_search_state(self._store.sweep_dir, self._state)

    # --- rounds -------------------------------------------------------------------------------

    def _may_ask(self) -> bool:
        """Between rounds always; mid-round once `start_next_at` of it is recorded."""
        pending = self._search.awaiting
        if pending == 0:
            return True
        size = self._round_size.get(self._search.round, self._strategy.per_round)
        told_share = 1.0 - pending / size
        if (
            self._search.round + 1 >= self._search.rounds
            or told_share < self._strategy.start_next_at
        ):
            return False
        log.info(
            "round %d: %d of %d recorded, starting round %d beside the stragglers",
            self._search.round + 1, size - pending, size, self._search.round + 2,
        )  # fmt: skip
        self._search.close_round()
        return True

    def _ask(self) -> None:
        round_index = self._search.round
        recorded_before = len(self._state.told)
        configs = self._search.ask()
        start = self._state.next_index
        points = [
            PlannedPoint(start + i, round_index, dict(c), self._strategy.kind)
            for i, c in enumerate(configs)
        ]
        self._state.planned += points
        self._state.strategy = self._search.state_dict()
        # Persisted before any of the round's trials starts: a crash from here on resumes
        # with exactly these points.
        save_search_state(self._store.sweep_dir, self._state)
        self._write_bounds(round_index, len(points), recorded_before)
        self._round_size[round_index] = len(points)
        self._queue += points
        log.info("round %d/%d asked: %d configurations", round_index + 1, self._search.rounds,
                 len(points))  # fmt: skip

    def _write_missing_bounds(self) -> None:
        """A crash between saving a round's state and writing its bounds loses only the latter."""
        run_id = self._state.run_id
        for round_index, bounds in enumerate(self._search.bounds):
            if bounds is not None and not self._store.parts("rounds", run_id, round_index):
                self._write_bounds(round_index, self._round_size.get(round_index, 0), None)

    def _write_bounds(self, round_index: int, configs: int, recorded_before: int | None) -> None:
        bounds = self._search.bounds[round_index]
        if bounds is None:
            return
        now = datetime.now(UTC)
        rows = []
        for name, domain in self._sweep.space.domains.items():
            entry = bounds[name]
            row: dict[str, object] = {
                "sweep": self._sweep.name,
                "run_id": self._state.run_id,
                "round": round_index,
                "parameter": name,
                "type": domain.to_dict()["type"],
                "scale": domain.to_dict().get("scale"),
                "configs": configs,
                "recorded_before": recorded_before,
                "spec_digest": self._sweep.digest,
                "asked_at": now,
            }
            if isinstance(entry, list):
                row["values"] = json.dumps(entry)
            else:
                row["low"], row["high"] = float(entry[0]), float(entry[1])
            rows.append(row)
        self._store.write(
            "rounds", rows, rounds_schema(), run_id=self._state.run_id, round_index=round_index
        )


def _new_search(sweep: Sweep) -> CoarseToFine:
    strategy = sweep.spec.strategy
    assert isinstance(strategy, CoarseToFineStrategy)
    return CoarseToFine(
        sweep.space,
        rounds=strategy.rounds,
        per_round=strategy.per_round,
        seed=sweep.spec.seed,
        mode=sweep.spec.objective.resolved_mode,
        sampler=strategy.sampler,
    )


def _spec_json(sweep: Sweep) -> dict[str, object]:
    return sweep.spec.model_dump(mode="json")


def _scores(sweep: Sweep, recorded: pd.DataFrame) -> dict[str, float | None]:
    """The objective of each recorded trial; None where it failed or diverged."""
    if recorded.empty:
        return {}
    metric = sweep.spec.objective.metric
    out: dict[str, float | None] = {}
    for row in recorded.to_dict("records"):
        out[str(row["trial_id"])] = recorded_score(row, metric)
    return out


def _config_of(sweep: Sweep, row: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in sweep.space.names:
        value = row.get(name)
        out[name] = value.item() if hasattr(value, "item") else value
    return out


def _indexes(recorded: pd.DataFrame) -> list[int]:
    if recorded.empty or "config_index" not in recorded.columns:
        return []
    return [int(i) for i in recorded["config_index"].dropna()]
