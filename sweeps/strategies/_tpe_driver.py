"""Optuna's TPE behind the same Proposer interface as coarse-to-fine, for comparisons.

Ray's `OptunaSearch` does the modelling. It only understands Ray's stock samplers, so the space
goes over in its searcher-safe form (a reverse-log `beta` becomes a log-uniform `one_minus_beta`)
and proposals come back through `SearchSpace.from_tune`. Resuming needs no state of its own:
every recorded result is added to a fresh study, and the budget counts recorded trials only,
so points lost in a crash are replaced by new proposals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis import ResultsStore
from sweeps._errors import Problem, SpecError
from sweeps.plan import PlannedPoint, Point, recorded_score, trial_id_of
from sweeps.spec import Sweep, TpeStrategy

__all__ = ["TpeProposer"]


class TpeProposer:
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
    ) -> TpeProposer:
        """The drivers' common entry (`sweeps.tune._drivers.DRIVERS`). TPE keeps no state of its
        own between runs: the recorded trials are its whole history, so the store, the run and
        an edit of the spec change nothing."""
        return cls(sweep, initial, recorded)

    def __init__(self, sweep: Sweep, initial: list[Point], recorded: pd.DataFrame) -> None:
        strategy = sweep.spec.strategy
        if not isinstance(strategy, TpeStrategy):
            raise TypeError(f"not a {TpeStrategy.__name__}: {strategy.kind}")
        try:
            import optuna
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            message = f"needs optuna: pip install 'caviar[{strategy.kind}]'"
            raise SpecError([Problem("strategy.kind", strategy.kind, message)]) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._sweep = sweep
        self._kind = strategy.kind  # the origin of its own proposals
        self._metric = sweep.spec.objective.metric
        rows = recorded.to_dict("records") if not recorded.empty else []
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=strategy.startup, seed=_sampler_seed(sweep.spec.seed, len(rows))
        )
        self._optuna = OptunaSearch(
            # A Tune search space, which OptunaSearch converts; its annotation lists only
            # Optuna's own forms.
            space=sweep.space.to_tune(searcher_safe=True),  # type: ignore[arg-type]
            metric=self._metric,
            mode=sweep.spec.objective.resolved_mode,
            sampler=sampler,
        )
        for row in rows:
            score = recorded_score(row, self._metric)
            params = self._searcher_safe({n: _plain(row[n]) for n in sweep.space.names})
            # With error=True Optuna records a failed trial and takes no value.
            self._optuna.add_evaluated_point(params, score, error=score is None)  # type: ignore[arg-type]
        done = {str(row["trial_id"]) for row in rows}
        self._queue = [
            PlannedPoint(p.index, 0, dict(p.params), "initial")
            for p in initial
            if p.trial_id not in done
        ]
        self._remaining = strategy.samples - sum(row.get("origin") == self._kind for row in rows)
        indexes = [int(row["config_index"]) for row in rows] + [p.index for p in initial]
        self._next_index = max(indexes, default=-1) + 1
        self._total = len(self._queue) + max(self._remaining, 0)

    @property
    def total(self) -> int:
        return self._total

    @property
    def finished(self) -> bool:
        return not self._queue and self._remaining <= 0

    @property
    def label(self) -> str:
        return self._kind

    @property
    def batch(self) -> int:
        return 1  # each proposal sees every result before it

    def propose(self) -> PlannedPoint | None:
        if self._queue:
            return self._queue.pop(0)
        if self._remaining <= 0:
            return None
        index = self._next_index
        suggestion = self._optuna.suggest(trial_id_of(index))
        if not isinstance(suggestion, dict):
            return None
        self._next_index += 1
        self._remaining -= 1
        return PlannedPoint(index, 0, self._sweep.space.from_tune(suggestion), self._kind)

    def take_queued(self, match: Callable[[PlannedPoint], bool]) -> PlannedPoint | None:
        return None  # TPE runs unpacked: each proposal should see every result before it

    def record(self, point: PlannedPoint, score: float | None) -> None:
        if point.origin == self._kind:
            result = None if score is None else {self._metric: score}
            self._optuna.on_trial_complete(point.trial_id, result, error=score is None)
        else:
            params = self._searcher_safe(point.params)
            # A None score goes with error=True, as above.
            self._optuna.add_evaluated_point(params, score, error=score is None)  # type: ignore[arg-type]

    def _searcher_safe(self, config: dict[str, object]) -> dict[str, object]:
        """The inverse of `SearchSpace.from_tune`: beta as one_minus_beta."""
        safe = self._sweep.space.to_tune(searcher_safe=True)
        out: dict[str, object] = {}
        for name, value in config.items():
            key = f"one_minus_{name}"
            if key in safe and name not in safe:
                # Why the type ignore below: a searched beta: a number the space validated
                out[key] = 1.0 - float(value)  # type: ignore[arg-type]
            else:
                out[name] = value
        return out


def _sampler_seed(seed: int, recorded: int) -> int:
    """The spec's seed for a fresh run; a resumed one's study is new, and a sampler seeded as
    the first run's would draw the first run's startup points again, all of them recorded."""
    if recorded == 0:
        return seed
    return int(np.random.SeedSequence([seed, recorded]).generate_state(1, dtype=np.uint32)[0])


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value
