"""What the MLflow export sends, decided from the results alone: one run per trial, one parent per
caviar run. Plain values, no MLflow: the client side (`_mlflow.py`) only sends them, and these
rules are tested without a tracking server.

Each run carries a key tag (`caviar.trial_key` = `<sweep>/<run_id>/<trial_id>`,
`caviar.run_key` = `<sweep>/<run_id>` for a parent) that the export searches for before creating
anything, so exporting twice creates nothing and an export after a resume adds only new trials.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis import Mode, best
from sweeps.record import trials_schema
from trainables import HYPERPARAMETERS

__all__ = [
    "PARENT_KEY",
    "TRIAL_KEY",
    "Metric",
    "ParentRun",
    "TrialRun",
    "sweep_runs",
]

TRIAL_KEY = "caviar.trial_key"
PARENT_KEY = "caviar.run_key"
SWEEP_TAG = "caviar.sweep"
# MLflow's limits on one value (https://mlflow.org/docs/latest/rest-api.html): tags 8000, params
# 6000 characters; a longer error message or dataset name is cut rather than refused.
_MAX_TAG = 8000
_MAX_PARAM = 6000
# `trials` columns that are not hyperparameters: the record's own columns, whatever the model.
_RECORD_COLUMNS = frozenset(trials_schema().names) - frozenset(HYPERPARAMETERS)
# Settings of the trial rather than of the model, sent as params beside the hyperparameters.
_RUN_PARAMS = ("epochs", "seed")
# Numbers measured for the whole trial, sent once (step = epochs run).
_TRIAL_METRICS = ("best_val_accuracy", "best_val_loss", "duration_s")
_EPOCH_IDS = frozenset({"sweep", "run_id", "round", "trial_id", "epoch", "run"})


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp_ms: int
    step: int


@dataclass(frozen=True)
class TrialRun:
    key: str
    parent_key: str
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: list[Metric]
    start_ms: int | None
    end_ms: int | None
    failed: bool  # status `error`: MLflow's FAILED; every other status ended the trial: FINISHED


@dataclass(frozen=True)
class ParentRun:
    """One caviar run (a `caviar run` with its resumes, or one `caviar retune`). Its tags change
    as the run grows (the best trial, new rounds), so they are rewritten on every export."""

    key: str
    name: str
    tags: dict[str, str]
    start_ms: int | None
    end_ms: int | None
    trials: list[TrialRun] = field(default_factory=list)


def sweep_runs(
    trials: pd.DataFrame,
    epochs: pd.DataFrame,
    bounds: pd.DataFrame,
    events: pd.DataFrame,
    *,
    searched: Sequence[str],
    objective: str,
    mode: Mode,
) -> list[ParentRun]:
    """The runs of one sweep's results, in run order; trials in their plan order.

    `bounds` is `analysis.round_bounds(...)`; `events` the sweep's `events` table (a re-tune's
    row names what it decided). `objective`/`mode` rank the best trial of each run.
    """
    metric_columns = _epoch_metric_columns(epochs)
    # A training function's own metrics are `trials` columns too; they are told from its
    # hyperparameters by also being curves (`lr` is both: a hyperparameter and each epoch's lr).
    own_metrics = set(metric_columns) - set(HYPERPARAMETERS) - set(searched)
    params = [c for c in trials.columns if c not in _RECORD_COLUMNS | own_metrics]
    params += [c for c in _RUN_PARAMS if c in trials.columns]
    curves = _curves(epochs, metric_columns)
    order = [c for c in ("run_id", "config_index", "trial_id") if c in trials.columns]
    parents = []
    for run_id, rows in trials.sort_values(order, kind="stable").groupby("run_id", sort=True):
        sweep = str(rows["sweep"].iloc[0])
        parent_key = f"{sweep}/{run_id}"
        children = [
            _trial_run(row, parent_key, params, curves.get((str(run_id), str(row["trial_id"]))))
            for row in rows.to_dict("records")
        ]
        tags = {
            PARENT_KEY: parent_key,
            SWEEP_TAG: sweep,
            "caviar.run_id": str(run_id),
            "caviar.trials": str(len(rows)),
            "caviar.searched": ",".join(searched),
            "caviar.objective": f"{objective} ({mode})",
            **_best_tags(rows, objective, mode),
            **_bounds_tags(bounds[bounds["run_id"] == run_id] if len(bounds) else bounds),
            **_retune_tags(events, str(run_id)),
        }
        starts = [c.start_ms for c in children if c.start_ms is not None]
        ends = [c.end_ms for c in children if c.end_ms is not None]
        parents.append(
            ParentRun(
                key=parent_key,
                name=str(run_id),
                tags=tags,
                start_ms=min(starts or ends or [0]) if starts or ends else None,
                end_ms=max(ends) if ends else None,
                trials=children,
            )
        )
    return parents


def _epoch_metric_columns(epochs: pd.DataFrame) -> list[str]:
    """Every float column of `epochs` is a curve (a training function's own metrics too)."""
    return [
        c
        for c in epochs.columns
        if c not in _EPOCH_IDS and pd.api.types.is_float_dtype(epochs[c].dtype)
    ]


def _curves(
    epochs: pd.DataFrame, columns: list[str]
) -> dict[tuple[str, str], list[tuple[int, dict[str, Any]]]]:
    """Per (run_id, trial_id): (epoch, metrics) in the order written (panda's rolled-back
    epochs stay, as they stay in `epochs`)."""
    if epochs.empty or not {"run_id", "trial_id", "epoch"} <= set(epochs.columns):
        return {}
    curves: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for row in epochs[["run_id", "trial_id", "epoch", *columns]].to_dict("records"):
        metrics = {c: row[c] for c in columns}
        curves.setdefault((str(row["run_id"]), str(row["trial_id"])), []).append(
            (int(row["epoch"]), metrics)
        )
    return curves


def _trial_run(
    row: Mapping[str, Any],
    parent_key: str,
    param_columns: Iterable[str],
    curve: list[tuple[int, dict[str, Any]]] | None,
) -> TrialRun:
    end = _ms(row.get("ended_at"))
    start = _ms(row.get("started_at")) or end  # MLflow would say "now"
    stamp = end or start or 0
    metrics = [
        Metric(key, float(value), stamp, epoch)
        for epoch, values in curve or []
        for key, value in values.items()
        if _present(value)
    ]
    done = _int(row.get("epochs_done")) or 0
    once = [*_TRIAL_METRICS, *([] if curve else ("train_loss", "val_loss", "val_accuracy"))]
    metrics += [Metric(key, float(row[key]), stamp, done) for key in once if _present(row.get(key))]
    key = f"{parent_key}/{row['trial_id']}"
    tags = {
        TRIAL_KEY: key,
        SWEEP_TAG: str(row["sweep"]),
        "caviar.run_id": str(row["run_id"]),
        "caviar.trial_id": str(row["trial_id"]),
    }
    for column in ("round", "origin", "pack_id", "status", "data_version", "dataset", "node"):
        if _present(row.get(column)):
            tags[f"caviar.{column}"] = _text(row[column])[:_MAX_TAG]
    if row.get("status") == "error" and _present(row.get("error")):
        tags["caviar.error"] = str(row["error"])[:_MAX_TAG]
    params = {
        name: _text(row[name])[:_MAX_PARAM] for name in param_columns if _present(row.get(name))
    }
    return TrialRun(
        key=key,
        parent_key=parent_key,
        name=str(row["trial_id"]),
        tags=tags,
        params=params,
        metrics=metrics,
        start_ms=start,
        end_ms=end,
        failed=row.get("status") == "error",
    )


def _best_tags(rows: pd.DataFrame, objective: str, mode: Mode) -> dict[str, str]:
    if objective not in rows.columns:
        return {}
    top = best(rows, k=1, objective=objective, mode=mode)
    if top.empty:
        return {}
    row = top.iloc[0]
    return {
        "caviar.best_trial_id": str(row["trial_id"]),
        "caviar.best_trial_key": f"{row['sweep']}/{row['run_id']}/{row['trial_id']}",
        f"caviar.best_{objective}": _text(row[objective]),
    }


def _bounds_tags(bounds: pd.DataFrame) -> dict[str, str]:
    """`caviar.bounds.round<r>`: {"lr": [low, high], ...} as JSON, one tag per round."""
    tags = {}
    for round_index, rows in bounds.groupby("round", sort=True):
        box = {str(r["parameter"]): [r["low"], r["high"]] for r in rows.to_dict("records")}
        tags[f"caviar.bounds.round{round_index}"] = json.dumps(box)[:_MAX_TAG]
    if len(bounds):
        tags["caviar.bounds_source"] = str(bounds["source"].iloc[0])
    return tags


def _retune_tags(events: pd.DataFrame, run_id: str) -> dict[str, str]:
    """A re-tune's decision, so a cron re-tune's drift shows beside its trials."""
    if events.empty or not {"kind", "run_id", "action"} <= set(events.columns):
        return {}
    rows = events[(events["kind"] == "retune") & (events["run_id"] == run_id)]
    if rows.empty:
        return {}
    row = rows.iloc[-1]
    tags = {"caviar.kind": "retune"}
    for column in ("action", "drift", "data_version", "incumbent_trial_id"):
        if column in rows.columns and _present(row[column]):
            tags[f"caviar.retune.{column}"] = _text(row[column])
    return tags


def _present(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and value == "")


def _text(value: object) -> str:
    item = getattr(value, "item", None)  # numpy scalars print as their Python values
    return str(item() if callable(item) else value)


def _int(value: object) -> int | None:
    return int(value) if _present(value) else None  # type: ignore[call-overload]


def _ms(value: object) -> int | None:
    if not _present(value):
        return None
    return int(pd.Timestamp(value).timestamp() * 1000)
