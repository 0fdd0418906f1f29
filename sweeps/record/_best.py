"""The sweep's "current best" record, `<results>/<sweep>/best.json`, which training jobs read.

It is small, plain JSON and replaced atomically (temporary name, fsync, rename; one upload on an
object store): a reader sees the previous record or the new one, never a mix, and a failed
re-tune never touches it. Until a re-tune has written one, the best `ok` trial of all runs
stands in, in the same shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from analysis import ResultsPath, SweepLayout, best, load_trials, write_text_atomically
from sweeps._errors import Problem, RunError
from sweeps.spec import Sweep
from trainables import HYPERPARAMETERS

__all__ = [
    "current_best",
    "ok_history",
    "read_best",
    "record_from_row",
    "write_best",
]


def read_best(sweep: Sweep, results_dir: ResultsPath) -> dict[str, Any] | None:
    """The stored record, or None when there is none for this sweep's objective.

    A record chosen under another objective (the spec changed its metric or mode) says nothing
    about this one, so it is treated as absent rather than trusted.
    """
    path = SweepLayout(results_dir / sweep.name).best
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError([Problem(SweepLayout.BEST_FILE, str(path), f"unreadable: {exc}")]) from None
    objective = sweep.spec.objective
    if not isinstance(record, dict) or (record.get("metric"), record.get("mode")) != (
        objective.metric,
        objective.resolved_mode,
    ):
        return None
    return record


def write_best(results_dir: ResultsPath, sweep: Sweep, record: Mapping[str, Any]) -> ResultsPath:
    path = SweepLayout(results_dir / sweep.name).best
    write_text_atomically(path, json.dumps(record, indent=1, sort_keys=False) + "\n")
    return path


def ok_history(sweep: Sweep, results_dir: ResultsPath) -> pd.DataFrame:
    """Every run's `ok` trials with a finite objective: what a re-tune warm-starts from."""
    if not (results_dir / sweep.name / "trials").is_dir():
        return pd.DataFrame()
    trials = load_trials(results_dir, sweep.name)
    metric = sweep.spec.objective.metric
    if not {"status", metric} <= set(trials.columns):
        return pd.DataFrame()
    scores = pd.to_numeric(trials[metric], errors="coerce")
    return trials[(trials["status"] == "ok") & np.isfinite(scores)].reset_index(drop=True)


def best_row(sweep: Sweep, rows: pd.DataFrame) -> dict[str, Any] | None:
    """The best of `rows` by the spec's objective, under `analysis.best`'s rule (ok rows with a
    finite objective; ties keep trial order); None when no row ranks. Every best row of a run,
    a re-tune and `caviar best` is this one."""
    if rows.empty:
        return None
    objective = sweep.spec.objective
    top = best(rows, k=1, objective=objective.metric, mode=objective.resolved_mode)
    return None if top.empty else dict(top.iloc[0].to_dict())


def record_from_row(
    sweep: Sweep,
    row: Mapping[str, Any],
    *,
    chosen_at: str | None = None,
    data_fingerprint: str | None = None,
    last_retune: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record's one shape, from a `trials` row: the searched values as `params`, every
    model hyperparameter (fixed and defaults included) as `config`, ready to train with."""
    objective = sweep.spec.objective
    if chosen_at is None:
        ended = row.get("ended_at")
        chosen_at = ended.isoformat() if isinstance(ended, datetime) else _now()
    version = row.get("data_version")  # the data it was scored on; older rows have none
    if version is None or version != version:
        version = sweep.spec.trainable.data_version
    return {
        "sweep": sweep.name,
        "metric": objective.metric,
        "mode": objective.resolved_mode,
        "score": _plain(row[objective.metric]),
        "params": {name: _plain(row.get(name)) for name in sweep.space.names},
        "config": {
            name: _plain(row.get(name))
            for name in [*HYPERPARAMETERS, *sweep.model_columns]
            if name in row and not _missing(row.get(name))
        },
        "run_id": _plain(row.get("run_id")),
        "trial_id": _plain(row.get("trial_id")),
        "seed": _plain(row.get("seed")),
        "chosen_at": chosen_at,
        "data_version": None if version is None else str(version),
        "data_fingerprint": data_fingerprint,
        "last_retune": None if last_retune is None else dict(last_retune),
    }


def current_best(sweep: Sweep, results_dir: ResultsPath) -> dict[str, Any]:
    """What `caviar best` prints; RunError (exit 1) when nothing has succeeded yet."""
    record = read_best(sweep, results_dir)
    if record is not None:
        return record
    row = best_row(sweep, ok_history(sweep, results_dir))
    if row is None:
        where = str(results_dir / sweep.name)
        raise RunError([Problem("sweep", sweep.name, f"no results yet in {where}")])
    return record_from_row(sweep, row)


def _plain(value: object) -> Any:
    """JSON-ready: numpy scalars unwrapped, NaN and missing values as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _now() -> str:
    return datetime.now(UTC).isoformat()
