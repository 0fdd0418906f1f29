"""Every path under `<results>/<sweep>/`, named in one place.

A sweep's directory holds the Parquet tables and the files that make a run resumable and a
re-tune safe. The modules that write and read them ask `SweepLayout` for a path instead of
spelling its name, so the whole layout reads here (docs/results.md describes it for users), a
new file cannot take an old one's name, and `tests/test_architecture.py` checks that no other
module spells these names::

    <results>/<sweep>/
        trials/ epochs/ rounds/ events/    the tables (Parquet, `_store`), each holding
            columns.parquet               no rows: every column the table has had
            run-<run_id>/round-<r>/part-<uuid>.parquet    the rows, one file per write
        _schema/<table>.json              each table's stored schema
        _space.json                       the searched space, for analysis (scales)
        _runs/<run_id>.json               run manifests
        _search/<run_id>.json             an adaptive strategy's state, per run
        _auto/<digest>.json               auto's decision, per spec digest
        _panda/<run_id>/<trial_id>/       panda's model checkpoints
        _ray/                             Ray Tune's own storage
        _locks/compact-<table>.lock       a table compaction's lock
        best.json                         the current best, read by training jobs
        .lock, .retune.lock               the run and re-tune locks (local results only)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from analysis._fs import ResultsPath

__all__ = ["Partition", "SweepLayout"]

# Folders below the sweep's, each named once: the paths below and `written_under_run_lock` use them.
_SCHEMA, _RUNS, _SEARCH, _AUTO, _PANDA = "_schema", "_runs", "_search", "_auto", "_panda"

# A table's partition folders. Not hive's `key=value`: `run_id` and `round` are columns of every
# file, and a hive key would make pandas and pyarrow read `round` from the path as a category
# too, clashing with the file's int32 (docs/results.md, "Why not hive folders"). The store wrote
# `run=<run_id>/round=<r>/` until the layout changed; `upgrade_layout` moves those folders.
_RUN, _ROUND, _PART = "run-", "round-", "part-"
_LEGACY_RUN, _LEGACY_ROUND = "run=", "round="
_PARTITION = re.compile(r"(?P<run>run[-=])(?P<run_id>[^/]+)/(?P<round>round[-=])(?P<r>-?[0-9]+)")


class Partition(NamedTuple):
    """The run and round a partition folder holds; `legacy` for the hive spelling."""

    run_id: str
    round_index: int
    legacy: bool


@dataclass(frozen=True)
class SweepLayout:
    """The paths of one sweep's results, below `sweep_dir` (local or on an object store)."""

    sweep_dir: ResultsPath

    RUN_LOCK: ClassVar[str] = ".lock"
    RETUNE_LOCK: ClassVar[str] = ".retune.lock"
    BEST_FILE: ClassVar[str] = "best.json"
    SPACE_FILE: ClassVar[str] = "_space.json"

    COLUMNS_FILE: ClassVar[str] = "columns.parquet"

    def table(self, name: str) -> ResultsPath:
        return self.sweep_dir / name

    def columns(self, table: str) -> ResultsPath:
        """A file with no rows and every column of `table`: it sorts before every partition,
        so readers that take the first file's schema (pandas, pyarrow, polars) see them all."""
        return self.table(table) / self.COLUMNS_FILE

    def partition(self, table: str, run_id: str, round_index: int) -> ResultsPath:
        return self.table(table) / f"{_RUN}{run_id}" / f"{_ROUND}{round_index}"

    def legacy_partition(self, table: str, run_id: str, round_index: int) -> ResultsPath:
        """Where the store wrote the partition before the layout changed."""
        return self.table(table) / f"{_LEGACY_RUN}{run_id}" / f"{_LEGACY_ROUND}{round_index}"

    @staticmethod
    def part_name(token: str) -> str:
        return f"{_PART}{token}.parquet"

    @staticmethod
    def parts_pattern(run_id: str, round_index: int | None = None) -> str:
        """A glob, below the table's folder, of the part files one run wrote (in one round)."""
        rnd = "*" if round_index is None else str(round_index)
        return f"{_RUN}{run_id}/{_ROUND}{rnd}/{_PART}*.parquet"

    @staticmethod
    def partition_of(run_folder: str, round_folder: str) -> Partition | None:
        """The partition two nested folder names spell (either spelling), or None."""
        match = _PARTITION.fullmatch(f"{run_folder}/{round_folder}")
        if match is None or (match["run"] == _LEGACY_RUN) != (match["round"] == _LEGACY_ROUND):
            return None
        return Partition(match["run_id"], int(match["r"]), match["run"] == _LEGACY_RUN)

    def schema(self, table: str) -> ResultsPath:
        return self.sweep_dir / _SCHEMA / f"{table}.json"

    @property
    def space(self) -> ResultsPath:
        return self.sweep_dir / self.SPACE_FILE

    @property
    def runs(self) -> ResultsPath:
        return self.sweep_dir / _RUNS

    def search_state(self, run_id: str) -> ResultsPath:
        return self.sweep_dir / _SEARCH / f"{run_id}.json"

    def auto_decision(self, digest: str) -> ResultsPath:
        return self.sweep_dir / _AUTO / f"{digest}.json"

    def panda_checkpoints(self, run_id: str, trial_id: str) -> ResultsPath:
        return self.sweep_dir / _PANDA / run_id / trial_id

    @property
    def ray(self) -> ResultsPath:
        return self.sweep_dir / "_ray"

    def compact_lock(self, table: str) -> ResultsPath:
        return self.sweep_dir / "_locks" / f"compact-{table}.lock"

    @property
    def best(self) -> ResultsPath:
        return self.sweep_dir / self.BEST_FILE

    def written_under_run_lock(self, tables: tuple[str, ...]) -> tuple[ResultsPath, ...]:
        """The folders only a run holding the run lock writes (with `tables`, the table names).

        A temporary left in them belongs to a run that died: the next holder may remove it.
        The sweep folder itself is not among them: a report is written there too.
        """
        folders = (_SCHEMA, _RUNS, _SEARCH, _AUTO, _PANDA)
        return (*(self.table(t) for t in tables), *(self.sweep_dir / f for f in folders))
