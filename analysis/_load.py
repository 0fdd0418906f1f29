"""Read a results directory back into pandas, one DataFrame per table across sweeps and runs.

Schema unification: the table's stored schema (``_schema/<table>.json``) lists every column ever
written, in order, so a column added by a later run reads as nulls in older files. A results
directory without a stored schema (copied by hand, written by another tool) is unified from the
Parquet footers instead, promoting compatible types (int64 -> double, ...).

``results_dir`` is a local directory or an ``s3://bucket/prefix`` (see `analysis._fs`).

Reads are consistent with a concurrent `compact`: the live files are listed, read, and listed
again; when a compaction was published in between (or removed a file before it was opened), the
read is retried. `_parts` explains why two listings suffice.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis._errors import ResultsError
from analysis._fs import ResultsLike, ResultsPath, arrow_filesystem, arrow_path, results_path
from analysis._layout import SweepLayout
from analysis._parts import Listing, list_live_parts
from analysis._store import ResultsStore

__all__ = [
    "load_epochs",
    "load_rounds",
    "load_space",
    "load_table",
    "load_trials",
    "sweeps_in",
]

_log = logging.getLogger(__name__)

_ATTEMPTS = 20
# `run_id` and `round` are stored in every file the store writes, and the file's columns win: a
# table may keep several rounds in one partition, and folder names are not read. Only files
# without `round` (another tool's, in hive `round=<r>` folders) take it from the path.
_ROUND_FROM_PATH = ds.partitioning(pa.schema([pa.field("round", pa.int32())]), flavor="hive")


def sweeps_in(results_dir: ResultsLike) -> list[str]:
    """The sweep names in a results directory (its subdirectories not starting with . or _)."""
    root = _existing_dir(results_dir)
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def load_trials(results_dir: ResultsLike, sweep: str | None = None) -> pd.DataFrame:
    """One row per configuration; ``sweep=None`` concatenates every sweep in the directory.

    Dtypes are those of docs/results.md (pyarrow's default conversion: string columns as
    pandas ``str``, int64 with nulls as float64). When one sweep is read and it has a stored
    search space (``<sweep>/_space.json``), it is attached as ``df.attrs["space"]`` so that
    `importance` and the plots use the sampling scales without being told.
    """
    root = results_path(results_dir)
    df = load_table(root, "trials", sweep)
    names = [sweep] if sweep is not None else sweeps_in(root)
    if len(names) == 1:
        space = load_space(root, names[0])
        if space is not None:
            df.attrs["space"] = space
    return df


def load_epochs(results_dir: ResultsLike, sweep: str | None = None) -> pd.DataFrame:
    """One row per (trial, epoch): the learning curves."""
    return load_table(results_dir, "epochs", sweep)


def load_rounds(results_dir: ResultsLike, sweep: str | None = None) -> pd.DataFrame:
    """The search bounds of each coarse-to-fine round; an empty frame when none were written."""
    return load_table(results_dir, "rounds", sweep)


def load_space(results_dir: ResultsLike, sweep: str) -> dict[str, dict[str, Any]] | None:
    """The spec's ``search_space`` mapping stored beside the results, or None if absent."""
    path = SweepLayout(results_path(results_dir) / sweep).space
    if not path.is_file():
        return None
    try:
        space = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(str(path), "search_space", f"unreadable space file: {exc}") from None
    if not isinstance(space, dict) or not all(isinstance(v, dict) for v in space.values()):
        raise ResultsError(str(path), type(space).__name__, "expected a mapping name -> domain")
    return space


def load_table(results_dir: ResultsLike, table: str, sweep: str | None = None) -> pd.DataFrame:
    """Any table (``trials``, ``epochs``, ``rounds``, ``events``) of one sweep or of all."""
    root = _existing_dir(results_dir)
    names = [sweep] if sweep is not None else sweeps_in(root)
    frames = []
    for name in names:
        store = ResultsStore(root, name)
        if sweep is not None and not store.sweep_dir.is_dir():
            known = ", ".join(sweeps_in(root)) or "none"
            raise ResultsError("sweep", sweep, f"no such sweep in {root} (sweeps: {known})")
        frames.append(_read_table(store, table))
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _read_table(store: ResultsStore, table: str) -> pd.DataFrame:
    directory = store.table_dir(table)
    if not directory.is_dir():
        return pd.DataFrame()
    arrow_table = read_live_table(directory, store.stored_schema(table), table)
    if arrow_table is None:
        return pd.DataFrame()
    if "run" in arrow_table.column_names:
        arrow_table = arrow_table.drop_columns(["run"])
    return arrow_table.to_pandas()


def read_live_table(
    directory: ResultsPath, stored: pa.Schema | None, table: str
) -> pa.Table | None:
    """The live rows of one table directory, retried until no compaction raced the read."""
    for _ in range(_ATTEMPTS):
        listing = list_live_parts(directory)
        if not listing.live:
            return None
        try:
            arrow_table = read_files(directory, listing, stored, table)
        except FileNotFoundError:
            continue  # a compaction removed a part after we listed it
        if listing.still_valid_after(list_live_parts(directory)):
            return arrow_table
        _log.debug("compaction raced a read of %s; reading again", directory)
    raise ResultsError(str(directory), table, f"files kept changing over {_ATTEMPTS} reads")


def read_files(
    directory: ResultsPath, listing: Listing, stored: pa.Schema | None, table: str
) -> pa.Table:
    filesystem = arrow_filesystem(directory)
    schema = stored if stored is not None else unified_schema(listing.live, table, filesystem)
    from_path = "round" not in schema.names
    try:
        dataset = ds.dataset(
            list(listing.live),
            format="parquet",
            filesystem=filesystem,
            partitioning=_ROUND_FROM_PATH if from_path else None,
            partition_base_dir=arrow_path(directory),
            schema=schema.append(pa.field("round", pa.int32())) if from_path else schema,
        )
        return dataset.to_table()
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        _raise_for_bad_file(listing.live, schema, table, exc, filesystem)
        raise ResultsError(str(directory), table, f"cannot read Parquet files: {exc}") from None


def unified_schema(
    files: tuple[str, ...] | list[str], table: str, filesystem: pafs.FileSystem | None = None
) -> pa.Schema:
    """The union of the files' columns, first-seen order, compatible types promoted."""
    schemas = []
    for path in files:
        try:
            schemas.append(pq.read_schema(path, filesystem=filesystem))
        except pa.ArrowInvalid as exc:
            raise ResultsError("file", path, f"corrupt Parquet file in {table!r}: {exc}") from None
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ResultsError(table, len(files), f"files have incompatible columns: {exc}") from None


def _raise_for_bad_file(
    files: tuple[str, ...],
    schema: pa.Schema,
    table: str,
    cause: Exception,
    filesystem: pafs.FileSystem | None = None,
) -> None:
    """Name the file that broke a read (unreadable, or a column of another type), not a
    traceback."""
    for path in files:
        try:
            file_schema = pq.read_schema(path, filesystem=filesystem)
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise ResultsError("file", path, f"corrupt Parquet file in {table!r}: {exc}") from None
        for field in file_schema:
            index = schema.get_field_index(field.name)
            if index >= 0 and not schema.field(index).type.equals(field.type):
                expected = schema.field(index).type
                message = f"column {field.name!r} is {field.type} here but {expected} elsewhere"
                raise ResultsError("file", path, f"{message}: {cause}") from None
    _log.debug("no single file explains the read error %s", cause)


def _existing_dir(results_dir: ResultsLike) -> ResultsPath:
    root = results_path(results_dir)
    if not root.is_dir():
        raise ResultsError("results_dir", str(root), "no such directory")
    return root
