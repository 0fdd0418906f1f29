"""Merge a partition's many small part files into one, without readers seeing duplicates or gaps.

The driver writes one small file per batch of finished trials, so a long sweep leaves hundreds of
files per round; every reader then pays a footer read per file. `compact` rewrites each
``run-<id>/round-<r>/`` directory's live parts as one file, in four steps:

1. write the merged rows to a dot-prefixed temporary (invisible to every reader), fsync it;
2. publish it by an atomic rename to ``compact-<uuid>.parquet``; its footer lists the parts it
   supersedes (key ``caviar.replaces``), so from this instant `load_trials` ignores them;
3. fsync the directory, so the merged file survives a crash before any part is removed;
4. remove the superseded parts.

A reader using this package sees the old set or the new set: see `_parts` for the argument and
`_load.read_live_table` for the retry. A crash between 2 and 4 leaves superseded parts behind;
this package's readers skip them and the next `compact` removes them. Readers that ignore the
footer (DuckDB, bare pyarrow) may see duplicates only inside that window. Only one `compact` per
table runs at a time (an advisory lock); `ResultsStore.write` may run concurrently: parts it
adds after the listing are not merged and stay as they are.

Local results directories only: the lock is a file lock, which an object store has no
equivalent of, so `compact` refuses an ``s3://`` location with a `ResultsError`.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from analysis._errors import ResultsError
from analysis._fs import ObjectPath, ResultsLike, fsync_file, results_path
from analysis._layout import SweepLayout
from analysis._load import read_files, unified_schema
from analysis._parts import COMPACT_PREFIX, REPLACES_KEY, list_live_parts, replaced_by
from analysis._store import ResultsStore

__all__ = ["compact"]


def compact(
    results_dir: ResultsLike,
    sweep: str,
    table: str = "trials",
    run_id: str | None = None,
    round_index: int | None = None,
) -> list[Path]:
    """Merge every partition (of ``run_id``/``round_index`` when given) holding 2+ live parts.

    Returns the merged files written. Safe to run while the sweep still writes and while others
    read; running it twice is harmless (the second call has nothing to merge).
    """
    root = results_path(results_dir)
    if isinstance(root, ObjectPath):
        message = "compaction needs a local results directory (it locks a file); not compacted"
        raise ResultsError("results_dir", str(root), message)
    store = ResultsStore(root, sweep)
    sweep_dir, table_dir = Path(str(store.sweep_dir)), Path(str(store.table_dir(table)))
    if not sweep_dir.is_dir():
        raise ResultsError("sweep", sweep, f"no such sweep in {results_dir}")
    if not table_dir.is_dir():
        return []
    written = []
    with _exclusive_lock(Path(str(store.layout.compact_lock(table)))):
        for partition in _partitions(table_dir, store.layout, run_id, round_index):
            merged = _compact_partition(partition, store.stored_schema(table), table)
            if merged is not None:
                written.append(merged)
    return written


def _partitions(
    table_dir: Path, layout: SweepLayout, run_id: str | None, round_index: int | None
) -> list[Path]:
    """The partition folders (either spelling: a sweep not yet upgraded is compacted as is)."""
    found = []
    for run in sorted(table_dir.iterdir()):
        if not run.is_dir() or run.name.startswith((".", "_")):
            continue
        for rnd in sorted(run.iterdir()):
            key = layout.partition_of(run.name, rnd.name) if rnd.is_dir() else None
            if key is None or run_id not in (None, key.run_id):
                continue
            if round_index is None or round_index == key.round_index:
                found.append(rnd)
    return found


def _compact_partition(directory: Path, stored: pa.Schema | None, table: str) -> Path | None:
    _remove_leftovers(directory)
    listing = list_live_parts(directory)
    if len(listing.live) < 2:
        return None
    schema = stored if stored is not None else unified_schema(listing.live, table)
    # Exactly the listed parts (a part written meanwhile is not ours to remove); read with the
    # table's schema so that columns added later come out as nulls, typed as stored.
    rows = read_files(directory, listing, schema, table).select(schema.names)
    # Transitive: a part replaced by an earlier merge that survived a crash stays excluded.
    replaces = sorted(
        {os.path.basename(p) for p in listing.live}
        | {n for m in listing.live if _is_merged(m) for n in replaced_by(Path(m))}
    )
    metadata = dict(schema.metadata or {})
    metadata[REPLACES_KEY] = json.dumps(replaces).encode()
    name = f"{COMPACT_PREFIX}{uuid.uuid4().hex}.parquet"
    tmp = directory / f".{name}.tmp"
    final = directory / name
    try:
        pq.write_table(rows.replace_schema_metadata(metadata), tmp)
        fsync_file(tmp)
        os.replace(tmp, final)  # publish: from here on readers use the merged file
    finally:
        tmp.unlink(missing_ok=True)
    fsync_file(directory)
    for path in listing.live:
        _remove(Path(path))
    return final


def _remove_leftovers(directory: Path) -> None:
    """Parts superseded by a merge that crashed before removing them; our own stale temps."""
    for path in list_live_parts(directory).superseded:
        _remove(Path(path))
    for temp in directory.glob(f".{COMPACT_PREFIX}*.tmp"):
        temp.unlink(missing_ok=True)  # we hold the lock: no other compaction is writing it


def _is_merged(path: str) -> bool:
    return os.path.basename(path).startswith(COMPACT_PREFIX)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
