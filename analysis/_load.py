"""Read a results directory back into pandas, one DataFrame per table across sweeps and runs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from analysis._errors import ResultsError
from analysis._store import ResultsStore

__all__ = ["load_epochs", "load_table", "load_trials", "sweeps_in"]

# The hive directory keys. `round` is also stored in every file (same type), `run` duplicates the
# stored `run_id` column and is dropped on read.
_PARTITIONING = ds.partitioning(
    pa.schema([("run", pa.string()), ("round", pa.int32())]), flavor="hive"
)


def sweeps_in(results_dir: str | os.PathLike[str]) -> list[str]:
    root = _existing_dir(results_dir)
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def load_trials(results_dir: str | os.PathLike[str], sweep: str | None = None) -> pd.DataFrame:
    """One row per configuration; ``sweep=None`` concatenates every sweep in the directory."""
    return load_table(results_dir, "trials", sweep)


def load_epochs(results_dir: str | os.PathLike[str], sweep: str | None = None) -> pd.DataFrame:
    """One row per (trial, epoch): the learning curves."""
    return load_table(results_dir, "epochs", sweep)


def load_table(
    results_dir: str | os.PathLike[str], table: str, sweep: str | None = None
) -> pd.DataFrame:
    root = _existing_dir(results_dir)
    names = [sweep] if sweep is not None else sweeps_in(root)
    frames = []
    for name in names:
        store = ResultsStore(root, name)
        if sweep is not None and not store.sweep_dir.is_dir():
            raise ResultsError("sweep", sweep, f"no such sweep in {root}")
        frames.append(_read_table(store, table))
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _read_table(store: ResultsStore, table: str) -> pd.DataFrame:
    directory = store.table_dir(table)
    if not directory.is_dir():
        return pd.DataFrame()
    # The stored schema already holds every column ever written (promoted in order), so reading
    # it is one small file instead of a footer per Parquet file.
    schema = store.stored_schema(table)
    try:
        dataset = ds.dataset(directory, format="parquet", partitioning=_PARTITIONING, schema=schema)
        arrow_table = dataset.to_table()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ResultsError(str(directory), table, f"cannot read Parquet files: {exc}") from None
    if "run" in arrow_table.column_names:
        arrow_table = arrow_table.drop_columns(["run"])
    return arrow_table.to_pandas()


def _existing_dir(results_dir: str | os.PathLike[str]) -> Path:
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsError("results_dir", str(root), "no such directory")
    return root
