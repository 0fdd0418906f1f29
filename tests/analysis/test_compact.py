"""Compaction: many parts become one file; readers never see duplicates or gaps meanwhile."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

import analysis._compact as compact_module
from analysis import ResultsError, ResultsStore, compact, load_epochs, load_trials


def _files(root: Path, table: str = "trials") -> list[Path]:
    """The table's row files (not its `columns.parquet`, which holds none and stays)."""
    return sorted((root / "s" / table).glob("*/*/*.parquet"))


def _sorted_ids(root: Path) -> list[str]:
    return sorted(load_trials(root, "s")["trial_id"])


def test_each_partition_becomes_one_file_with_the_same_rows(tmp_path: Path, synth) -> None:
    synth.write_sweep(tmp_path, n=50, rounds=2, per_file=5)
    before = load_trials(tmp_path, "s").sort_values("trial_id").reset_index(drop=True)
    assert len(_files(tmp_path)) == 20
    written = compact(tmp_path, "s", "trials")
    assert len(written) == 2 and _files(tmp_path) == sorted(written)
    after = load_trials(tmp_path, "s").sort_values("trial_id").reset_index(drop=True)
    assert after.equals(before)
    assert not [p for p in (tmp_path / "s" / "trials").rglob(".*")]  # no temporaries left


def test_only_the_named_run_round_and_table_are_compacted(tmp_path: Path, synth) -> None:
    synth.write_sweep(tmp_path, n=20, rounds=2, per_file=5)
    assert len(compact(tmp_path, "s", "epochs", run_id="r1", round_index=1)) == 1
    assert len(_files(tmp_path, "epochs")) == 4 + 1
    assert len(_files(tmp_path, "trials")) == 8
    assert len(load_epochs(tmp_path, "s")) == 120


def test_compacting_twice_is_harmless(tmp_path: Path, synth) -> None:
    synth.write_sweep(tmp_path, n=30, per_file=3)
    compact(tmp_path, "s")
    assert compact(tmp_path, "s") == []
    assert len(_sorted_ids(tmp_path)) == 30


def test_parts_written_after_a_compaction_are_merged_by_the_next(tmp_path: Path, synth) -> None:
    synth.write_sweep(tmp_path, n=20, per_file=5)
    compact(tmp_path, "s")
    extra = [dict(r, trial_id=f"x{i}") for i, r in enumerate(synth.synthetic_trials(4, 9))]
    ResultsStore(tmp_path, "s").write(
        "trials", extra, synth.TRIALS_SCHEMA, run_id="r1", round_index=0
    )
    compact(tmp_path, "s")
    assert len(_files(tmp_path)) == 1
    assert len(_sorted_ids(tmp_path)) == 24


def test_an_unknown_sweep_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such sweep"):
        compact(tmp_path, "nope")


def test_a_crash_between_publish_and_removal_leaves_no_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synth
) -> None:
    synth.write_sweep(tmp_path, n=30, per_file=5)
    expected = _sorted_ids(tmp_path)

    def crash(path: Path) -> None:
        raise KeyboardInterrupt("killed before removing the old parts")

    monkeypatch.setattr(compact_module, "_remove", crash)
    with pytest.raises(KeyboardInterrupt):
        compact(tmp_path, "s")
    assert len(_files(tmp_path)) == 7  # six superseded parts and the merged file
    assert _sorted_ids(tmp_path) == expected  # the merged file's footer excludes the old parts
    monkeypatch.undo()
    compact(tmp_path, "s")  # cleans up the leftovers
    assert len(_files(tmp_path)) == 1
    assert _sorted_ids(tmp_path) == expected
    glob = str(tmp_path / "s" / "trials" / "**" / "*.parquet")
    assert duckdb.sql(f"select count(*) from read_parquet('{glob}')").fetchall() == [(30,)]


def test_concurrent_readers_see_the_old_set_or_the_new_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synth
) -> None:
    """A reader thread loads in a loop while the partitions are compacted.

    Before each old part is removed, the compaction waits until the reader has finished a
    whole read that started after the previous step, so reads land in every dangerous state:
    merged file published with all old parts present, and with only some of them left.
    """
    synth.write_sweep(tmp_path, n=48, rounds=2, per_file=6)
    expected = _sorted_ids(tmp_path)
    real_remove = compact_module._remove
    reads = threading.Semaphore(0)
    wrong: list[int] = []
    stop = threading.Event()

    def remove_after_a_read(path: Path) -> None:
        while reads.acquire(blocking=False):
            pass  # forget reads that started before this step
        assert reads.acquire(timeout=10), "the reader thread stopped reading"
        assert reads.acquire(timeout=10)  # a read that started after this step began
        real_remove(path)

    def reader() -> None:
        while not stop.is_set():
            ids = _sorted_ids(tmp_path)
            if ids != expected:
                wrong.append(len(ids))
            reads.release()

    monkeypatch.setattr(compact_module, "_remove", remove_after_a_read)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert len(compact(tmp_path, "s")) == 2
    finally:
        stop.set()
        thread.join()
    assert not wrong, f"a reader saw {wrong[0]} rows instead of {len(expected)}"
    assert len(_files(tmp_path)) == 2
