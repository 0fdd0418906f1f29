"""The Ray Tune side of a sweep: a searcher that hands out planned points, and the callbacks
that record results and progress from the driver as trials finish."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.search import Searcher

from analysis import ResultsStore
from sweeps.plan import (
    DRIVER_KEYS,
    INDEX_KEY,
    MEMBERS_KEY,
    ORIGIN_KEY,
    PACK_ID_KEY,
    ROUND_KEY,
    TRIAL_KEY,
    PlannedPoint,
    Progress,
    Proposer,
    ended_by_itself,
    reported_score,
)
from sweeps.record import (
    epoch_row,
    epochs_schema,
    trial_row,
    trials_schema,
    with_own_metrics,
)

__all__ = [
    "Packing",
    "PointsSearcher",
    "ProgressCallback",
    "ProposerSearcher",
    "ResultsCallback",
    "run_pack",
    "run_point",
    "skip_callback_usage_tag",
    "strip_driver_keys",
]

log = logging.getLogger(__name__)


def run_point(config: dict[str, Any]) -> None:
    """The function Ray runs for each trial, minus the driver's keys: caviar's loop, or a
    user's whole training function."""
    from trainables import train_bn_mlp, train_function

    trial = strip_driver_keys(config)
    (train_function if "function" in trial else train_bn_mlp)(trial)


def run_pack(config: dict[str, Any]) -> None:
    """The function Ray runs for a pack: the packed trainable minus the driver's keys."""
    from trainables import train_bn_mlp_packed

    train_bn_mlp_packed({k: v for k, v in config.items() if k not in (MEMBERS_KEY, PACK_ID_KEY)})


def strip_driver_keys(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in DRIVER_KEYS}


class PointsSearcher(Searcher):
    """Hands Ray the planned configurations in order, then says FINISHED.

    The plan is computed up front from the spec's seed, so the sweep is reproducible and a
    resumed run can skip what is already recorded.
    """

    def __init__(self, configs: list[dict[str, Any]]) -> None:
        super().__init__(metric=None, mode=None)
        self._configs = configs
        self._next = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # Searcher.FINISHED is a str Ray's annotation omits
        if self._next >= len(self._configs):
            return Searcher.FINISHED
        config = self._configs[self._next]
        self._next += 1
        return dict(config)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"next": self._next}))

    def restore(self, checkpoint_path: str) -> None:
        self._next = int(json.loads(Path(checkpoint_path).read_text())["next"])


class ProposerSearcher(Searcher):
    """Hands Ray whatever an adaptive strategy proposes and tells it every outcome.

    The strategy (a `Proposer`: coarse-to-fine, TPE) decides; this class only translates. A
    `None` proposal makes Ray wait and ask again later, which is how a round that needs more
    results before it can be asked holds back new trials without stopping running ones. Ray's
    own searcher checkpoint is not how caviar resumes (the strategy persists its state beside
    the results, see sweeps/record/_search_state.py), so `save` records nothing Ray must
    restore.
    """

    def __init__(
        self,
        proposer: Proposer,
        make_config: Callable[[PlannedPoint], dict[str, Any]],
        metric: str,
        packing: Packing | None = None,
    ) -> None:
        super().__init__(metric=None, mode=None)
        self._proposer = proposer
        self._make_config = make_config
        self._objective = metric
        self._packing = packing
        self._live: dict[str, list[PlannedPoint]] = {}
        self._members: dict[str, dict[str, dict[str, Any]]] = {}  # a pack's last entry per member

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # Searcher.FINISHED is a str Ray's annotation omits
        if self._proposer.finished:
            return Searcher.FINISHED
        point = self._proposer.propose()
        if point is None:
            return None
        if self._packing is None:
            self._live[trial_id] = [point]
            return self._make_config(point)
        # A pack: the proposed point plus queued points of its shape, never asking a new round
        # just to fill it.
        key = self._packing.group_of(self._make_config(point))
        points = [point]
        while len(points) < self._packing.size:
            more = self._proposer.take_queued(
                # Why the type ignore below: checked not None above; the narrowing does
                # not reach into the lambda
                lambda p: self._packing.group_of(self._make_config(p)) == key  # type: ignore[union-attr]
            )
            if more is None:
                break
            points.append(more)
        self._live[trial_id] = points
        return self._packing.trial_config([self._make_config(p) for p in points])

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        for entry in result.get("members", []):
            self._members.setdefault(trial_id, {})[str(entry.get("member_id"))] = entry

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        points = self._live.pop(trial_id, [])
        members = self._members.pop(trial_id, {})
        for point in points:
            last = members.get(point.trial_id) if self._packing is not None else result
            self._proposer.record(point, reported_score(last, self._objective, failed=error))

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"state": "kept by caviar in _search/"}))

    def restore(self, checkpoint_path: str) -> None:
        pass


@dataclass(frozen=True)
class Packing:
    """How an adaptive strategy's points become packs: size, shape key, and the trial config."""

    size: int
    group_of: Callable[[dict[str, Any]], object]
    trial_config: Callable[[list[dict[str, Any]]], dict[str, Any]]


def trial_dirname(trial: Trial) -> str:
    """Ray's default names a trial's directory after its whole config; ours is the trial id."""
    name = trial.config.get(PACK_ID_KEY) or trial.config[TRIAL_KEY]
    return f"{name}-{trial.trial_id}"


def _members(trial: Trial) -> list[dict[str, Any]]:
    """A pack's member descriptors (trial_id, index, origin, round); one entry for a plain trial."""
    config = trial.config
    if MEMBERS_KEY in config:
        return list(config[MEMBERS_KEY])
    return [
        {
            "trial_id": config[TRIAL_KEY],
            "index": config[INDEX_KEY],
            "origin": config[ORIGIN_KEY],
            "round": config.get(ROUND_KEY, 0),
        }
    ]


def _member_history(reports: list[dict[str, Any]], member_id: str) -> list[dict[str, Any]]:
    """One member's per-epoch entries out of a pack's reports, with the pack-level fields."""
    out = []
    for report in reports:
        for entry in report.get("members", []):
            if entry.get("member_id") == member_id:
                shared = {k: report.get(k) for k in ("node_id", "node_ip", "time_total_s")}
                out.append({**entry, **shared})
    return out


class ResultsCallback(tune.Callback):
    """Writes each finished trial (and its curve) to Parquet from the driver.

    Rows are buffered and flushed every `flush_every_s` seconds or `flush_rows` trials, so a
    64-trial sweep makes a handful of files, and at most that window is lost in a driver crash
    (a resumed run re-evaluates it). Epoch rows are written before the trial rows that own them.
    """

    def __init__(
        self,
        store: ResultsStore,
        run_id: str,
        *,
        flush_every_s: float = 10.0,
        flush_rows: int = 32,
        model_columns: Mapping[str, str] | None = None,
    ) -> None:
        self._store = store
        self._model_columns = dict(model_columns or {})
        self._run_id = run_id
        self._flush_every_s = flush_every_s
        self._flush_rows = flush_rows
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._started: dict[str, datetime] = {}
        self._trials: list[dict[str, object]] = []
        self._epochs: list[dict[str, object]] = []
        self._last_flush = time.monotonic()
        self._trials_schema: pa.Schema = trials_schema(self._model_columns)
        self._epochs_schema: pa.Schema = epochs_schema()
        self.rows_written = 0

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._started.setdefault(trial.trial_id, datetime.now(UTC))

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        self._history.setdefault(trial.trial_id, []).append(dict(result))

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._finish(trial, error=None)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._finish(trial, error=trial_error_message(trial))

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        due = time.monotonic() - self._last_flush >= self._flush_every_s
        if self._trials and (due or len(self._trials) >= self._flush_rows):
            self.flush()

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.flush()

    def _finish(self, trial: Trial, error: str | None) -> None:
        reports = self._history.pop(trial.trial_id, [])
        started_at = self._started.pop(trial.trial_id, datetime.now(UTC))
        packed = MEMBERS_KEY in trial.config
        for i, member in enumerate(_members(trial)):
            raw = _member_history(reports, member["trial_id"]) if packed else reports
            # A trial retried after a failure reports its epochs again from its last checkpoint
            # (or from the start): keep one row per epoch, the latest report of it.
            history = list(
                {int(r.get("epoch", r.get("training_iteration", 0))): r for r in raw}.values()
            )
            config = trial.config["members"][i] if packed else trial.config
            last = history[-1] if history else {}
            # A member that diverged or was stopped before its pack failed keeps that outcome.
            ended = ended_by_itself(last)
            ids = {
                "sweep": self._store.sweep,
                "run_id": self._run_id,
                "round": int(member["round"]),
                "trial_id": member["trial_id"],
            }
            row = trial_row(
                ids, config, history, started_at=started_at, error=None if ended else error,
                model_columns=self._model_columns,
            )  # fmt: skip
            row["config_index"] = member["index"]
            row["origin"] = member["origin"]
            row["pack_id"] = trial.config.get(PACK_ID_KEY)
            self._trials.append(row)
            self._epochs += [epoch_row(ids, result, own_metrics=True) for result in history]

    def flush(self) -> None:
        """Epochs first: a trial row is never visible without its curve."""
        for table, rows, schema in (
            ("epochs", self._epochs, with_own_metrics(self._epochs_schema, self._epochs)),
            ("trials", self._trials, self._trials_schema),
        ):
            # Why the type ignore below: rows are our own records: round is an int
            for round_index in sorted({int(row["round"]) for row in rows}):  # type: ignore[call-overload]
                mine = [row for row in rows if row["round"] == round_index]
                self._store.write(table, mine, schema, run_id=self._run_id, round_index=round_index)
        self.rows_written += len(self._trials)
        self._trials, self._epochs = [], []
        self._last_flush = time.monotonic()


class ProgressCallback(tune.Callback):
    """Keeps a Progress up to date and hands it to `show` (the CLI decides how to print)."""

    def __init__(self, progress: Progress, show: Callable[[Progress], None]) -> None:
        self.progress = progress
        self._show = show
        self._last: dict[str, dict[str, dict[str, Any]]] = {}  # pack trial -> member -> entry

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks into its experiment state; `show` may hold a terminal stream
        # (or pytest's capture), which neither pickles nor means anything in a restored run.
        return {"progress": self.progress}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.progress = state["progress"]
        self._show = _no_show
        self._last = {}

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.progress.running += len(_members(trial))
        self._show(self.progress)

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        # A pack's members report together, and some stop early: keep each one's last entry,
        # judged when the pack completes (as a single trial is judged by its last epoch).
        for entry in result.get("members", []):
            self._last.setdefault(trial.trial_id, {})[entry["member_id"]] = entry

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        p = self.progress
        n = len(_members(trial))
        p.running, p.done = max(p.running - n, 0), p.done + n
        last = trial.last_result or {}
        if MEMBERS_KEY in trial.config:
            for member_id, entry in self._last.pop(trial.trial_id, {}).items():
                if entry.get("diverged"):
                    p.diverged += 1
                else:
                    config = _member_config(trial, member_id)
                    p.consider(member_id, entry.get(p.metric), config)
        elif last.get("diverged"):
            p.diverged += 1
        else:
            p.consider(trial.config[TRIAL_KEY], last.get(p.metric), strip_driver_keys(trial.config))
        self._show(p)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        p = self.progress
        n = len(_members(trial))
        p.running, p.done, p.errors = max(p.running - n, 0), p.done + n, p.errors + n
        self._show(p)


def _no_show(progress: Progress) -> None:
    pass


def _member_config(trial: Trial, member_id: object) -> dict[str, Any]:
    for member in trial.config.get("members", []):
        if member.get("member_id") == member_id:
            return {k: v for k, v in member.items() if k != "member_id"}
    return {}


def trial_error_message(trial: Trial) -> str:
    """The last line of a failed trial's error ("ValueError: ..."). Read from the trial's local
    error file: when callbacks hear of the failure, `get_error` (the storage copy) is not
    synced yet and has nothing."""
    local = getattr(trial, "error_file", None)
    text = Path(local).read_text() if local and Path(local).is_file() else trial.get_error()
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "trial failed"


def skip_callback_usage_tag() -> bool:
    """Leave out Ray's usage tag of a run's callbacks when usage stats are off; whether it is.

    To count the callbacks `Tuner.fit()` is given, Ray imports its MLflow, W&B and Comet
    integrations, and the MLflow one imports `mlflow` when it is installed (as with
    `caviar[mlflow]`): 1.5 s of every run's start, measured, for a tag that is only sent
    with usage stats, which caviar's Ray session turns off unless the user turned them on
    (`RAY_USAGE_STATS_ENABLED`).
    """
    if os.environ.get("RAY_USAGE_STATS_ENABLED") != "0":
        return False
    from ray.air._internal import usage

    if not callable(getattr(usage, "tag_callbacks", None)):  # another Ray: nothing to skip
        return False
    usage.tag_callbacks = _no_tag  # what ray.tune.tune calls
    return True


def _no_tag(callbacks: object) -> bool:
    return False
