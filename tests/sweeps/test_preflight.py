"""Before any trial: the results directory must be writable and have room; one run per sweep."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from sweeps import RunError, SpecError
from sweeps.run import LockHeldError, sweep_lock
from sweeps.run._preflight import MIN_FREE_BYTES, check_results_dir


class _Usage(NamedTuple):
    total: int
    used: int
    free: int


def test_missing_results_dir_is_fine_and_not_created(tmp_path: Path) -> None:
    check_results_dir(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SpecError, match="is not a directory"):
        check_results_dir(tmp_path / "f" / "results")


def test_a_full_disk_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda _: _Usage(10**9, 10**9, MIN_FREE_BYTES - 1))
    with pytest.raises(SpecError, match="MiB free"):
        check_results_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    # flock is per open file description, so a second acquisition in-process also fails
    with (
        sweep_lock(tmp_path / "s"),
        pytest.raises(LockHeldError) as held,
        sweep_lock(tmp_path / "s"),
    ):
        pass
    # A typed error with the holder, so callers decide by type, not by the message's text.
    assert held.value.holder == str(os.getpid())
    assert isinstance(held.value, RunError) and held.value.exit_code == 1
    assert "another `caviar run` of this sweep is running" in str(held.value)
    with sweep_lock(tmp_path / "s"):
        pass
