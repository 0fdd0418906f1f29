"""Paths that mean the same file on every node of a submitted job.

`caviar submit` ships the spec's directory inside the Ray job's working directory. Ray unpacks
that directory on each node at a path of its own (under the node's temp dir), so an absolute
path the driver resolved on the head names nothing, or a stale copy, on another node. In a
submitted job the driver therefore writes paths inside the working directory relative to it,
behind a marker, and each trial resolves them against its own node's copy.

The driver starts in the job's working directory; a Tune trial starts there too, and Tune
keeps that directory in `TUNE_ORIG_WORKING_DIR` before it moves the trial into its own.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SHIPPED_ENV", "local_path", "portable_path"]

# Set by `caviar submit` in the job's runtime environment: the working directory was shipped.
SHIPPED_ENV = "CAVIAR_SHIPPED_JOB"
_MARK = "job-dir:"


def portable_path(path: str) -> str:
    """`path` as every node of this run can resolve it: unchanged outside a submitted job, for
    URIs, and for paths outside the shipped directory (the cluster must then have them)."""
    if os.environ.get(SHIPPED_ENV) != "1" or not path or "://" in path:
        return path
    root = Path.cwd().resolve()
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root):
        return path
    return _MARK + resolved.relative_to(root).as_posix()


def local_path(path: str) -> str:
    """The file a portable path names on this node."""
    if not path.startswith(_MARK):
        return path
    root = os.environ.get("TUNE_ORIG_WORKING_DIR") or os.getcwd()
    return str(Path(root, path.removeprefix(_MARK)))
