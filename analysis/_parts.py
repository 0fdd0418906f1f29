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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis._errors import ResultsError
from analysis._fs import ResultsPath, arrow_filesystem, list_files
from analysis._layout import SweepLayout

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
    """Walk the partition folders; skip names starting with ``.`` or ``_`` like pyarrow does.

    Paths are as pyarrow takes them with ``arrow_filesystem(table_dir)`` (``bucket/key`` on an
    object store; ``/`` separates levels on both).
    """
    files = _one_per_name(f for f in list_files(table_dir) if f.endswith(".parquet"))
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


def _one_per_name(files: Iterable[str]) -> list[str]:
    """Each part once. Part names are unique (a uuid), so a name seen twice is a part that
    `upgrade_layout` is moving on an object store (copied, not yet deleted): the copy in the
    current layout is kept."""
    chosen: dict[str, str] = {}
    for path in sorted(files):
        name = posixpath.basename(path)
        if name not in chosen or _in_legacy_partition(chosen[name]):
            chosen[name] = path
    return list(chosen.values())


def _in_legacy_partition(path: str) -> bool:
    folders = path.split("/")[-3:-1]
    key = SweepLayout.partition_of(*folders) if len(folders) == 2 else None
    return key is not None and key.legacy


def replaced_by(merged: str | Path, filesystem: pafs.FileSystem | None = None) -> list[str]:
    """The part names (same directory) that a merged file supersedes, from its footer."""
    try:
        metadata = pq.read_metadata(str(merged), filesystem=filesystem).metadata or {}
    except pa.ArrowInvalid as exc:
        raise ResultsError("file", str(merged), f"corrupt Parquet file: {exc}") from None
    raw = metadata.get(REPLACES_KEY)
    return [] if raw is None else list(json.loads(raw))
