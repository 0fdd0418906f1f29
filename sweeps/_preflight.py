"""Checks and guards that run before any trial: a writable results directory with room to
write, and one `caviar run` per sweep at a time."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sweeps._errors import Problem, RunError, SpecError

__all__ = ["MIN_FREE_BYTES", "check_results_dir", "sweep_lock"]

# Below this, a sweep would fail part-way through writing results; refuse it up front.
MIN_FREE_BYTES = 64 * 1024 * 1024


def check_results_dir(results_dir: Path) -> None:
    """Fail before any trial starts if results could not be written; creates nothing."""
    probe = results_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise SpecError([Problem("results", str(results_dir), f"{probe} is not a directory")])
    # os.access says yes to root even on a read-only mount, so really try to create a file.
    try:
        fd, name = tempfile.mkstemp(prefix=".caviar-probe-", dir=probe)
    except OSError as exc:
        reason = "read-only file system" if exc.errno == errno.EROFS else "not writable"
        raise SpecError([Problem("results", str(results_dir), reason)]) from None
    os.close(fd)
    os.unlink(name)
    free = shutil.disk_usage(probe).free
    if free < MIN_FREE_BYTES:
        raise SpecError(
            [Problem("results", str(results_dir), f"only {free // 2**20} MiB free on its disk")]
        )


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the sweep for the duration of a run.

    flock is released by the kernel when the process dies, so a killed run leaves no stale
    lock behind: the next run (or `--resume`) simply gets it.
    """
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunError(
                [
                    Problem(
                        "sweep",
                        sweep_dir.name,
                        f"another `caviar run` of this sweep is running (pid {holder})",
                    )
                ]
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
