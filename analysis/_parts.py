"""Which Parquet files of a table are live: the read side of the compaction protocol.

`compact` merges a partition's parts into one file named ``compact-<uuid>.parquet`` whose footer
lists, under the key ``caviar.replaces``, every part it supersedes. The merged file is published
by an atomic rename *before* any old part is removed, so at every instant the directory holds
either the old parts alone or the merged file (plus some not yet removed old parts, which its
footer excludes). Listing a directory is not a snapshot, though: a ``readdir`` that overlaps the
compaction may miss both the new merged file and an old part already removed. `list_live_parts`
is therefore called twice by readers (before and after reading, see `_load`): a gap in the first
listing implies the merged file was published before that listing ended, so the second listing
necessarily contains it and differs from the first.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis._errors import ResultsError
from analysis._fs import ResultsPath, arrow_filesystem, list_files

__all__ = ["COMPACT_PREFIX", "REPLACES_KEY", "Listing", "list_live_parts", "replaced_by"]

COMPACT_PREFIX = "compact-"
REPLACES_KEY = b"caviar.replaces"


@dataclass(frozen=True)
class Listing:
    """The live files of one table (sorted), and every merged file seen while listing."""

    live: tuple[str, ...]
    compacted: frozenset[str]
    superseded: tuple[str, ...]

    def still_valid_after(self, later: Listing) -> bool:
        """True when `later` shows no compaction published since this listing was taken.

        New plain parts (a concurrent `ResultsStore.write`) are fine: this listing is then a
        consistent state from before those writes.
        """
        return later.compacted <= self.compacted and set(self.live) <= set(later.live)


def list_live_parts(table_dir: ResultsPath) -> Listing:
    """Walk the hive directories; skip names starting with ``.`` or ``_`` like pyarrow does.

    Paths are as pyarrow takes them with ``arrow_filesystem(table_dir)`` (``bucket/key`` on an
    object store; ``/`` separates levels on both).
    """
    files = [f for f in list_files(table_dir) if f.endswith(".parquet")]
    filesystem = arrow_filesystem(table_dir)
    compacted = [f for f in files if posixpath.basename(f).startswith(COMPACT_PREFIX)]
    superseded: set[str] = set()
    for merged in compacted:
        try:
            names = replaced_by(merged, filesystem)
        except FileNotFoundError:
            continue  # compacted again meanwhile; the second listing will tell
        directory = posixpath.dirname(merged)
        superseded.update(posixpath.join(directory, n) for n in names)
    live = tuple(sorted(f for f in files if f not in superseded))
    return Listing(
        live=live,
        compacted=frozenset(compacted),
        superseded=tuple(sorted(superseded.intersection(files))),
    )


def replaced_by(merged: str | Path, filesystem: pafs.FileSystem | None = None) -> list[str]:
    """The part names (same directory) that a merged file supersedes, from its footer."""
    try:
        metadata = pq.read_metadata(str(merged), filesystem=filesystem).metadata or {}
    except pa.ArrowInvalid as exc:
        raise ResultsError("file", str(merged), f"corrupt Parquet file: {exc}") from None
    raw = metadata.get(REPLACES_KEY)
    return [] if raw is None else list(json.loads(raw))
