"""Synthetic results directories written with ResultsStore: no Ray, no training.

Tests reach the helpers through the `synth` fixture rather than importing this module, so they
run however pytest is started (no `tests` package on sys.path needed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from analysis import ResultsStore

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
    "beta": {"type": "float", "low": 0.9, "high": 0.999, "scale": "reverse_log"},
    "hidden": {"type": "int", "low": 16, "high": 256, "scale": "log"},
    "batch_size": {"type": "choice", "values": [32, 64, 128, 256]},
}

TRIALS_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("run_id", pa.string()),
        ("round", pa.int32()),
        ("trial_id", pa.string()),
        ("config_index", pa.int64()),
        ("status", pa.string()),
        ("lr", pa.float64()),
        ("beta", pa.float64()),
        ("hidden", pa.int64()),
        ("batch_size", pa.int64()),
        ("batchnorm", pa.bool_()),
        ("val_accuracy", pa.float64()),
        ("val_loss", pa.float64()),
        ("epochs_done", pa.int64()),
        ("ended_at", pa.timestamp("us", tz="UTC")),
    ]
)
EPOCHS_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("run_id", pa.string()),
        ("round", pa.int32()),
        ("trial_id", pa.string()),
        ("epoch", pa.int64()),
        ("val_accuracy", pa.float64()),
        ("val_loss", pa.float64()),
    ]
)


def accuracy(lr: np.ndarray, beta: np.ndarray, batchnorm: np.ndarray) -> np.ndarray:
    """Peaked at lr = 1e-2 (wider with BatchNorm), a weak beta effect; in [0.1, 0.99]."""
    width = np.where(batchnorm, 1.2, 0.5)
    peak = np.exp(-(((np.log10(lr) + 2) / width) ** 2))
    return 0.1 + 0.85 * peak + 0.04 * (np.log10(1 - beta) + 3) / 2


def synthetic_trials(
    n: int, seed: int, *, sweep: str = "s", run_id: str = "r1", round_index: int = 0
) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    lr = 10 ** rng.uniform(-4, 0, n)
    beta = 1 - 10 ** rng.uniform(-3, -1, n)
    hidden = np.round(10 ** rng.uniform(np.log10(16), np.log10(256), n)).astype(int)
    batch_size = rng.choice([32, 64, 128, 256], n)
    batchnorm = rng.random(n) < 0.5
    acc = accuracy(lr, beta, batchnorm) + rng.normal(0, 0.005, n)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        diverged = lr[i] > 0.5 and not batchnorm[i]
        rows.append(
            {
                "sweep": sweep,
                "run_id": run_id,
                "round": round_index,
                "trial_id": f"t{round_index:02d}{i:03d}",
                "config_index": round_index * 1000 + i,
                "status": "diverged" if diverged else "ok",
                "lr": float(lr[i]),
                "beta": float(beta[i]),
                "hidden": int(hidden[i]),
                "batch_size": int(batch_size[i]),
                "batchnorm": bool(batchnorm[i]),
                "val_accuracy": float("nan") if diverged else float(acc[i]),
                "val_loss": float("nan") if diverged else float(2.5 * (1 - acc[i])),
                "epochs_done": 3,
                "ended_at": start + timedelta(seconds=round_index * 1000 + i),
            }
        )
    return rows


def write_sweep(
    root: Path,
    sweep: str = "s",
    *,
    n: int = 40,
    seed: int = 0,
    rounds: int = 1,
    per_file: int = 10,
    space: dict[str, object] | None = SPACE,
) -> None:
    """Trials (``per_file`` rows per part file), three epochs per trial, and the stored space."""
    store = ResultsStore(root, sweep)
    for r in range(rounds):
        rows = synthetic_trials(n, seed + r, sweep=sweep, round_index=r)
        for start in range(0, len(rows), per_file):
            chunk = rows[start : start + per_file]
            store.write("trials", chunk, TRIALS_SCHEMA, run_id="r1", round_index=r)
            epochs = [
                {
                    "sweep": sweep,
                    "run_id": "r1",
                    "round": r,
                    "trial_id": row["trial_id"],
                    "epoch": e,
                    "val_accuracy": float(row["val_accuracy"]) * (0.7 + 0.1 * e),
                    "val_loss": float(row["val_loss"]) * (1.3 - 0.1 * e),
                }
                for row in chunk
                for e in (1, 2, 3)
            ]
            store.write("epochs", epochs, EPOCHS_SCHEMA, run_id="r1", round_index=r)
    if space is not None:
        (root / sweep / "_space.json").write_text(json.dumps(space))


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """One sweep "s": 120 trials in 12 files, one round, with a stored search space."""
    write_sweep(tmp_path, n=120)
    return tmp_path


@pytest.fixture
def synth() -> SimpleNamespace:
    """The helpers and constants above: ``synth.write_sweep(...)``, ``synth.SPACE``, ..."""
    return SimpleNamespace(
        SPACE=SPACE,
        TRIALS_SCHEMA=TRIALS_SCHEMA,
        synthetic_trials=synthetic_trials,
        write_sweep=write_sweep,
    )
