"""Turns what Ray reports about trials into `trials` and `epochs` rows, with fixed dtypes."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

import pyarrow as pa

from sweeps.plan import trial_status
from trainables import BUILTIN_ONLY, HYPERPARAMETERS, FileSource, is_factory_reference

__all__ = [
    "AUTO_EVENT",
    "EPOCH_METRICS",
    "EVENT_KINDS",
    "PANDA_EVENT",
    "RETUNE_EVENT",
    "branch_columns",
    "epoch_row",
    "epochs_schema",
    "events_schema",
    "trial_row",
    "trials_schema",
    "with_own_metrics",
]

EPOCH_METRICS = ("train_loss", "val_loss", "val_accuracy")
_ARROW = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}
_TIME = pa.timestamp("us", tz="UTC")


def trials_schema(model_columns: Mapping[str, str] | None = None) -> pa.Schema:
    """Every hyperparameter has a column (fixed, searched or default), so runs compare later;
    `model_columns` are a user's factory keywords and their kinds (`Sweep.model_columns`)."""
    head = [
        ("sweep", pa.string()),
        ("run_id", pa.string()),
        ("round", pa.int32()),
        ("trial_id", pa.string()),
        ("config_index", pa.int64()),
        ("origin", pa.string()),
        ("pack_id", pa.string()),  # the Ray trial that trained it with others (null: alone)
        ("status", pa.string()),
    ]
    hparams = [(name, _ARROW[hp.kind]) for name, hp in HYPERPARAMETERS.items()]
    hparams += [(name, _ARROW[kind]) for name, kind in (model_columns or {}).items()]
    tail = [
        ("dataset", pa.string()),
        ("data_version", pa.string()),
        ("precision", pa.string()),  # fp32 or bf16 (null: a training function's own loop)
        ("epochs", pa.int64()),
        *[(m, pa.float64()) for m in EPOCH_METRICS],
        ("best_val_accuracy", pa.float64()),
        ("best_val_loss", pa.float64()),
        ("epochs_done", pa.int64()),
        ("seed", pa.int64()),
        ("started_at", _TIME),
        ("ended_at", _TIME),
        ("duration_s", pa.float64()),
        ("node", pa.string()),
        ("node_id", pa.string()),
        ("error", pa.string()),
    ]
    return pa.schema(head + hparams + tail)


def epochs_schema() -> pa.Schema:
    return pa.schema(
        [
            ("sweep", pa.string()),
            ("run_id", pa.string()),
            ("round", pa.int32()),
            ("trial_id", pa.string()),
            ("epoch", pa.int64()),
            *[(m, pa.float64()) for m in EPOCH_METRICS],
            ("lr", pa.float64()),
            ("epoch_time_s", pa.float64()),
        ]
    )


def with_own_metrics(schema: pa.Schema, rows: list[dict[str, object]]) -> pa.Schema:
    """`schema` plus a float64 column for each training function's own metric in `rows`."""
    names = {name for row in rows for name in row if name not in schema.names}
    return pa.schema([*schema, *(pa.field(name, pa.float64()) for name in sorted(names))])


def branch_columns() -> list[tuple[str, pa.DataType]]:
    """Extra `epochs` columns of panda runs: which decision judged the epoch, and whether that
    decision rolled it back (the curve keeps abandoned branches, so reports can draw them)."""
    return [("decision", pa.int64()), ("abandoned", pa.bool_())]


# What an `events` row records (its `kind`); the table is shared, its schema only grows.
PANDA_EVENT = "panda"  # a babysitter's decision (this schema)
AUTO_EVENT = "auto"  # auto's choice of panda or caviar (this schema, no model)
RETUNE_EVENT = "retune"  # one `caviar retune` (`_retune.retune_events_schema`)
EVENT_KINDS = (PANDA_EVENT, AUTO_EVENT, RETUNE_EVENT)


def events_schema() -> pa.Schema:
    """One row per panda decision, with the babysitter's whole state after it (see
    docs/panda.md): `--resume` continues from the last row of each model. Auto's decision
    uses it too, without a model."""
    return pa.schema(
        [
            ("sweep", pa.string()),
            ("run_id", pa.string()),
            ("round", pa.int32()),
            ("kind", pa.string()),
            ("trial_id", pa.string()),
            ("decision", pa.int64()),
            ("epoch", pa.int64()),
            ("epochs_trained", pa.int64()),
            ("action", pa.string()),
            ("reason", pa.string()),
            ("metric", pa.float64()),
            ("lr_before", pa.float64()),
            ("lr_after", pa.float64()),
            ("restored_epoch", pa.int64()),
            ("best_metric", pa.float64()),
            ("rollbacks", pa.int64()),
            ("checkpoint", pa.string()),
            ("node_id", pa.string()),
            ("recorded_at", _TIME),
        ]
    )


# The names a user's training function reported (trainables' USER_METRICS_KEY).
_OWN_METRICS = "caviar_metrics"


def epoch_row(
    ids: Mapping[str, object], result: Mapping[str, object], *, own_metrics: bool = False
) -> dict[str, object]:
    """`own_metrics`: also every other number a training function reported, as its column."""
    row = dict(ids)
    epoch = result.get("epoch", result.get("training_iteration", 0))
    row["epoch"] = int(float(epoch)) if isinstance(epoch, numbers.Real) else 0
    for metric in EPOCH_METRICS:
        row[metric] = _float(result.get(metric))
    if own_metrics:
        for name in cast(Iterable[str], result.get(_OWN_METRICS) or ()):
            if name not in EPOCH_METRICS and name not in row:
                row[str(name)] = _float(result.get(name))
    row["lr"] = _float(result.get("lr"))
    row["epoch_time_s"] = _float(result.get("time_this_iter_s"))
    return row


def trial_row(
    ids: Mapping[str, object],
    config: Mapping[str, object],
    history: Sequence[Mapping[str, object]],
    *,
    started_at: datetime,
    error: str | None,
    model_columns: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """The row for one finished configuration; `history` is every epoch it reported."""
    row: dict[str, object] = dict(ids)
    user_model = is_factory_reference(config.get("model"))
    own_loop = "function" in config  # a training function: only the names it was given
    for name, hp in HYPERPARAMETERS.items():
        # The built-in MLP's shape says nothing about a user's network: null there.
        shapeless = (user_model and name in BUILTIN_ONLY) or (own_loop and name not in config)
        row[name] = None if shapeless else config.get(name, hp.default)
    for name in model_columns or {}:
        row[name] = config.get(name)
    dataset = config.get("dataset")
    row["dataset"] = (
        FileSource.from_config(dataset).label if FileSource.is_config(dataset) else dataset
    )
    row["data_version"] = config.get("data_version")
    row["precision"] = None if own_loop else config.get("precision", "fp32")
    row["epochs"] = config.get("epochs")
    row["seed"] = config.get("seed")
    last = history[-1] if history else {}
    row["status"] = trial_status(last, len(history), config.get("epochs"), failed=bool(error))
    for metric in EPOCH_METRICS:
        row[metric] = _float(last.get(metric))
    finite = [r for r in history if not r.get("diverged")]
    accuracies = [_float(r.get("val_accuracy")) for r in finite]
    losses = [_float(r.get("val_loss")) for r in finite]
    row["best_val_accuracy"] = max((a for a in accuracies if a is not None), default=None)
    row["best_val_loss"] = min((v for v in losses if v is not None), default=None)
    row["epochs_done"] = len(history)
    row["started_at"] = started_at
    row["ended_at"] = datetime.now(UTC)
    row["duration_s"] = _float(last.get("time_total_s"))
    row["node"] = last.get("node_ip") or last.get("hostname")
    row["node_id"] = last.get("node_id")
    row["error"] = error
    return row


def _float(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        # Why the type ignore below: any reported value: what float() refuses is caught below
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number
