"""The sweep's locks: one `caviar run` (or re-tune) writes a sweep at a time.

Each is an exclusive, non-blocking flock on a file in the sweep's directory, holding the
holder's pid. The kernel drops an flock when its holder dies, however it dies, so a SIGKILLed
run leaves no stale lock: the file stays, the lock does not, and the next run takes it. An
object store offers no such lock, so a sweep in ``s3://`` runs without one: one writer per
sweep there is the user's to keep (docs/results.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from analysis import (
    TABLES,
    ObjectPath,
    ResultsPath,
    SweepLayout,
    interrupted_writes,
    upgrade_layout,
)
from sweeps._errors import Problem, RunError

__all__ = ["LockHeldError", "hold_lock", "refuse_if_locked", "sweep_lock"]

log = logging.getLogger(__name__)
_RUN_HOLDER = "another `caviar run` of this sweep"


class LockHeldError(RunError):
    """Another process holds the lock; `holder` is its pid as it wrote it."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], holder: str) -> None:
        super().__init__(problems)
        self.holder = holder

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.problems, self.holder))


@contextlib.contextmanager
def hold_lock(sweep_dir: Path, name: str, holder_is: str) -> Iterator[None]:
    """Hold `<sweep_dir>/<name>` for the block; `holder_is` says who a holder is, in the
    message ("another `caviar run` of this sweep")."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(sweep_dir / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _flock(fd, sweep_dir, holder_is)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _flock(fd: int, sweep_dir: Path, holder_is: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        message = f"{holder_is} is running (pid {holder})"
        raise LockHeldError([Problem("sweep", sweep_dir.name, message)], holder) from None


def refuse_if_locked(sweep_dir: ResultsPath) -> None:
    """Refuse a run at once when another holds the sweep's run lock, rather than after Ray has
    started (seconds). Only a check: the lock itself is taken once Ray has found the trials fit,
    because taking it creates the sweep's folder, and a refused spec writes nothing. So this
    opens the lock file only if it exists, and lets go at once."""
    if isinstance(sweep_dir, ObjectPath):
        return
    try:
        fd = os.open(sweep_dir / SweepLayout.RUN_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        _flock(fd, sweep_dir, _RUN_HOLDER)
    finally:
        os.close(fd)  # which releases the probe's lock, if it got it


@contextlib.contextmanager
def sweep_lock(sweep_dir: ResultsPath) -> Iterator[None]:
    """The run lock, held while a run (or a re-tune) writes the sweep.

    Its holder is the sweep's one writer, so it also moves folders an older caviar wrote to
    today's layout (`analysis.upgrade_layout`) before anything is written.
    """
    if isinstance(sweep_dir, ObjectPath):
        log.info("%s: no lock on an object store; run one writer per sweep", sweep_dir)
        upgrade_layout(sweep_dir)
        yield
        return
    with hold_lock(sweep_dir, SweepLayout.RUN_LOCK, _RUN_HOLDER):
        _remove_interrupted_writes(sweep_dir)
        upgrade_layout(sweep_dir)
        yield


def _remove_interrupted_writes(sweep_dir: Path) -> None:
    """Temporaries of writes a killed run began and never renamed into place.

    Readers skip them already ("."-prefixed); they are removed so that a sweep killed many times
    does not collect them. Holding the run lock makes them safe to remove: every writer of
    these files works for the lock's holder, and the previous holder is gone.
    """
    layout = SweepLayout(sweep_dir)
    leftovers = interrupted_writes(sweep_dir, targets=(layout.BEST_FILE, layout.SPACE_FILE))
    for folder in layout.written_under_run_lock(TABLES):
        leftovers += interrupted_writes(folder, recursive=True)
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        log.info(
            "%s: removed %d file(s) an interrupted run left half-written", sweep_dir, len(leftovers)
        )
