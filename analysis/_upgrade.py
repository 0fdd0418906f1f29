"""Move a sweep's tables from hive partition folders to today's layout, in place.

Until the layout changed, the store named a table's partitions as hive keys,
``run=<run_id>/round=<r>/``. With ``round`` also a column of every file, pandas and pyarrow
then read ``round`` twice, the file's int32 and the path's category, and refused to merge them.
The store now writes ``run-<run_id>/round-<r>/`` (`SweepLayout`, docs/results.md). This package's
loaders read either spelling; `upgrade_layout` moves the old folders so that every other reader
does too, and writes each table's ``columns.parquet``.

It runs in the writer that holds the sweep's run lock (`caviar run`, ``--resume``, `caviar
retune`), which is the only writer: nothing is written into the old folders meanwhile. Readers
may read meanwhile, and see every row once:

- locally each partition folder moves by one rename, so a file is in the old folder or the new
  one; a read that listed it before the rename finds it gone, or the listing changed, and reads
  again (`_load.read_live_table`);
- an object store has no rename: each file is copied to its new key, then the old key deleted.
  A listing in between shows the part twice, under the same unique name; `_parts` keeps one.

A crash part way leaves some partitions moved and some not; the loaders read both, and the next
writer finishes the move.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

import pyarrow.fs as pafs

from analysis._fs import ObjectPath, ResultsLike, arrow_path, results_path
from analysis._layout import SweepLayout
from analysis._store import TABLES, ResultsStore

__all__ = ["upgrade_layout"]

log = logging.getLogger(__name__)


def upgrade_layout(sweep_dir: ResultsLike) -> int:
    """Move every hive-named partition of the sweep's tables; returns how many moved.

    Call it holding the sweep's run lock (or, on an object store, as its one writer).
    """
    sweep_dir = results_path(sweep_dir, "sweep_dir")
    store = ResultsStore(sweep_dir.parent, sweep_dir.name)
    moved = 0
    for table in TABLES:
        table_dir = store.layout.table(table)
        if not table_dir.is_dir():
            continue
        if isinstance(table_dir, ObjectPath):
            moved += _move_objects(store.layout, table, table_dir)
        else:
            moved += _move_folders(store.layout, table, table_dir)
        stored = store.stored_schema(table)
        if stored is not None and not store.layout.columns(table).exists():
            store.write_columns(table, stored)
    if moved:
        log.info("%s: moved %d partition(s) to the run-<id>/round-<r> layout", sweep_dir, moved)
    return moved


def _move_folders(layout: SweepLayout, table: str, table_dir: Path) -> int:
    moved = 0
    for run in sorted(p for p in table_dir.iterdir() if p.is_dir()):
        emptied = False
        for rnd in sorted(p for p in run.iterdir() if p.is_dir()):
            key = layout.partition_of(run.name, rnd.name)
            if key is None or not key.legacy:
                continue
            target = Path(str(layout.partition(table, key.run_id, key.round_index)))
            target.parent.mkdir(parents=True, exist_ok=True)
            _rename_folder(rnd, target)
            moved += 1
            emptied = True
        if emptied:
            with contextlib.suppress(OSError):  # something else in it: left where it is
                run.rmdir()
    return moved


def _rename_folder(source: Path, target: Path) -> None:
    """One rename; into a folder that already holds files (a crash part way), file by file."""
    try:
        os.rename(source, target)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    for path in sorted(source.iterdir()):
        if path.is_file():
            os.rename(path, target / path.name)  # part names are unique: nothing is replaced
    with contextlib.suppress(OSError):
        source.rmdir()


def _move_objects(layout: SweepLayout, table: str, table_dir: ObjectPath) -> int:
    fs = table_dir.fs
    selector = pafs.FileSelector(table_dir.path, recursive=True, allow_not_found=True)
    moved: set[tuple[str, str]] = set()
    for info in sorted(fs.get_file_info(selector), key=lambda i: i.path):
        parts = info.path[len(table_dir.path) + 1 :].split("/")
        if info.type != pafs.FileType.File or len(parts) != 3:
            continue
        key = layout.partition_of(parts[0], parts[1])
        if key is None or not key.legacy:
            continue
        target = arrow_path(layout.partition(table, key.run_id, key.round_index) / parts[2])
        fs.copy_file(info.path, target)  # whole, at once: readers see it or not
        fs.delete_file(info.path)
        moved.add((parts[0], parts[1]))
    for run in sorted({run for run, _ in moved}):
        folder = table_dir / run
        left = fs.get_file_info(pafs.FileSelector(folder.path, recursive=True))
        if not any(i.type == pafs.FileType.File for i in left):
            fs.delete_dir(folder.path)  # the empty-folder markers a delete leaves behind
    return len(moved)
