"""Rows built from Ray's reports: statuses, final and best metrics, fixed dtypes."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pyarrow as pa

from sweeps.record import epoch_row, trial_row, trials_schema
from trainables import HYPERPARAMETERS

IDS = {"sweep": "s", "run_id": "r", "round": 0, "trial_id": "t00000"}
CONFIG = {"lr": 0.1, "hidden": 32, "dataset": "digits", "epochs": 3, "seed": 11}


def _epoch(e: int, acc: float, loss: float, diverged: bool = False) -> dict[str, object]:
    return {"epoch": e, "train_loss": loss, "val_loss": loss, "val_accuracy": acc,
            "diverged": diverged, "time_total_s": 0.5 * e, "node_ip": "10.0.0.1"}  # fmt: skip


def _row(history: list[dict[str, object]], error: str | None = None) -> dict[str, object]:
    return trial_row(IDS, CONFIG, history, started_at=datetime.now(UTC), error=error)


def test_ok_trial_keeps_final_and_best_metrics() -> None:
    row = _row([_epoch(1, 0.5, 1.0), _epoch(2, 0.9, 0.3), _epoch(3, 0.8, 0.4)])
    assert row["status"] == "ok"
    assert row["val_accuracy"] == 0.8 and row["best_val_accuracy"] == 0.9
    assert row["best_val_loss"] == 0.3
    assert row["epochs_done"] == 3 and row["duration_s"] == 1.5 and row["node"] == "10.0.0.1"


def test_every_hyperparameter_is_recorded_with_defaults_filled() -> None:
    row = _row([_epoch(1, 0.5, 1.0)])
    for name, hp in HYPERPARAMETERS.items():
        assert row[name] == CONFIG.get(name, hp.default)


def test_diverged_trial_is_not_an_error_and_best_ignores_the_nan_epoch() -> None:
    row = _row([_epoch(1, 0.4, 2.0), _epoch(2, 0.1, math.nan, diverged=True)])
    assert row["status"] == "diverged"
    assert math.isnan(row["val_loss"])
    assert row["best_val_accuracy"] == 0.4


def test_errored_trial_records_the_message() -> None:
    row = _row([], error="RuntimeError: boom")
    assert row["status"] == "error" and row["error"] == "RuntimeError: boom"
    assert row["val_accuracy"] is None and row["epochs_done"] == 0


def test_rows_fit_the_fixed_schema() -> None:
    schema = trials_schema()
    rows = [_row([_epoch(1, 0.5, 1.0)]), _row([], error="x")]
    table = pa.Table.from_pylist(
        [{**r, "config_index": 0, "origin": "random"} for r in rows], schema=schema
    )
    assert table.num_rows == 2
    assert table.schema.field("lr").type == pa.float64()
    assert table.schema.field("hidden").type == pa.int64()
    assert epoch_row(IDS, _epoch(2, 0.5, 1.0))["epoch"] == 2


def test_the_precision_a_trial_trained_in_is_a_column() -> None:
    assert trials_schema().field("precision").type == "string"
    at = datetime.now(UTC)
    history = [_epoch(1, 0.5, 1.0)]
    assert trial_row(IDS, CONFIG, history, started_at=at, error=None)["precision"] == "fp32"
    bf16 = {**CONFIG, "precision": "bf16"}
    assert trial_row(IDS, bf16, history, started_at=at, error=None)["precision"] == "bf16"
    own_loop = {**CONFIG, "function": "train:train"}  # a training function's own precision
    assert trial_row(IDS, own_loop, history, started_at=at, error=None)["precision"] is None
