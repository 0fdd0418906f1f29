"""Checks that run before any trial: a writable results location, with room to write, locally.
The sweep's locks are `sweeps.run._lock`."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid

import pyarrow.fs as pafs

from analysis import ObjectPath, ResultsPath
from sweeps._errors import Problem, SpecError

__all__ = ["MIN_FREE_BYTES", "check_results_dir"]


# Below this, a sweep would fail part-way through writing results; refuse it up front.
MIN_FREE_BYTES = 64 * 1024 * 1024


def check_results_dir(results_dir: ResultsPath) -> None:
    """Fail before any trial starts if results could not be written; creates nothing."""
    if isinstance(results_dir, ObjectPath):
        _check_bucket(results_dir)
        return
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


def _check_bucket(results_dir: ObjectPath) -> None:
    """The bucket exists and takes (and deletes) an object under the prefix: credentials,
    endpoint and permissions, checked with the requests the run will make.

    The probe object is deleted again. pyarrow then recreates the prefix's parent as an empty
    "directory" marker object, which readers never list as data.
    """
    bucket = results_dir.path.split("/", 1)[0]
    value = str(results_dir)
    try:
        if results_dir.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise SpecError([Problem("results", value, f"no such bucket {bucket!r}")])
        probe = results_dir / f".caviar-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink(missing_ok=True)
    except OSError as exc:
        raise SpecError([Problem("results", value, f"not writable: {_first_line(exc)}")]) from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
